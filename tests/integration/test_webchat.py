"""The web chat through its real routes: a browser played by aiohttp's client (docs/webchat.md)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from sqlalchemy import func, select

from bots.dialog.agents import AgentDesk
from bots.dialog.dispatcher import Dispatcher
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.notices import render_notice
from bots.webchat.routes import WEBCHAT, setup_webchat
from core import notify
from core.adapters.tables import channel_identities, chat_messages, conversations, documents
from core.bootstrap import Core
from tests.integration.telegram_helpers import knowledge_base
from tests.support import make_core

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4


class Tab:
    """One browser tab with the chat open."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session: str | None = None
        self.history: list[dict[str, Any]] | None = None
        self.greeting: list[dict[str, Any]] = []

    async def frame(self, within: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.ws.receive_json(), within)

    async def opened(self) -> Tab:
        """Read what the server says on connecting: hello or history, then (nothing stored
        yet) the menu."""
        first = await self.frame()
        if first["type"] == "hello":
            self.session = first["session"]
        else:
            assert first["type"] == "history"
            self.history = first["messages"]
        if not self.history:
            self.greeting = [await self.frame()]
        return self

    async def turn(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one frame and read until the bot's turn is over: the frames in between."""
        await self.ws.send_json(frame)
        assert await self.frame() == {"type": "typing", "from": "bot"}
        said = []
        while (got := await self.frame())["type"] != "idle":
            said.append(got)
        return said

    async def say(self, text: str, client_id: str | None = None) -> list[dict[str, Any]]:
        frame = {"type": "message", "text": text}
        if client_id is not None:
            frame["id"] = client_id
        return await self.turn(frame)

    async def tap(self, action: str) -> list[dict[str, Any]]:
        return await self.turn({"type": "action", "id": action})

    async def silent(self, within: float = 0.2) -> bool:
        try:
            await asyncio.wait_for(self.ws.receive(), within)
        except TimeoutError:
            return True
        return False


class Site:
    """The web chat on a test server, and browsers that connect to it."""

    def __init__(self, core: Core, engine: DialogEngine, client: Any) -> None:
        self.core, self.engine, self.client = core, engine, client
        url = client.make_url("/")
        self.origin = f"{url.scheme}://{url.host}:{url.port}"

    async def connect(self, session: str | None = None, origin: str | None = "own",
                      **query: str) -> aiohttp.ClientWebSocketResponse:
        params = dict(query)
        if session is not None:
            params["session"] = session
        return await self.client.ws_connect(
            "/ws/chat", params=params, origin=self.origin if origin == "own" else origin)

    async def tab(self, session: str | None = None, **query: str) -> Tab:
        return await Tab(await self.connect(session, **query)).opened()

    async def upload(self, session: str, data: bytes, content_type: str = "image/jpeg",
                     ) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData()
        form.add_field("session", session)
        form.add_field("lang", "en")
        form.add_field("file", data, filename="id.jpg", content_type=content_type)
        response = await self.client.post("/webchat/upload", data=form)
        return response.status, await response.json()

    async def conversation(self, session: str) -> int:
        chat_id = self.client.app[WEBCHAT].tokens.chat_of(session, self.core.clock.now())
        async with self.core.uow(read_only=True) as uow:
            return (await uow.conn.execute(select(conversations.c.id).where(
                conversations.c.channel == "web", conversations.c.chat_id == chat_id))
                ).scalar_one()

    async def count(self, table: Any) -> int:
        async with self.core.uow(read_only=True) as uow:
            return (await uow.conn.execute(select(func.count()).select_from(table))).scalar_one()


@asynccontextmanager
async def site_on(core: Core, aiohttp_client: Any) -> AsyncIterator[Site]:
    engine = DialogEngine(core, knowledge_base(), Catalog.load())
    app = web.Application()
    setup_webchat(app, core, engine)
    client = await aiohttp_client(app)
    try:
        yield Site(core, engine, client)
    finally:
        await client.close()
        await engine.close()


@pytest.fixture
async def site(core: Core, aiohttp_client: Any) -> AsyncIterator[Site]:
    async with site_on(core, aiohttp_client) as s:
        yield s


@asynccontextmanager
async def tight_site(database_url: str, clock: Any, tmp_path: Any, aiohttp_client: Any,
                     **overrides: Any) -> AsyncIterator[Site]:
    """A site on a core with its own settings (tighter limits)."""
    core = await make_core(database_url, clock, tmp_path, **overrides)
    try:
        async with site_on(core, aiohttp_client) as s:
            yield s
    finally:
        await core.close()


def actions(message: dict[str, Any]) -> list[str]:
    return [b["id"] for b in message["buttons"]]


# The page ------------------------------------------------------------------------------------

async def test_the_page_and_the_widget_are_served_without_inline_script(site):
    page = await site.client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert '<meta name="viewport"' in html
    assert 'src="/webchat/static/chat.js"' in html
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html)  # every script is a file
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert f"connect-src 'self' {site.origin.replace('http', 'ws', 1)};" in policy
    widget = await site.client.get("/widget.js")
    assert widget.status == 200
    assert widget.content_type == "text/javascript"
    assert 'embed: "1"' in await widget.text()
    for name, kind in [("chat.js", "text/javascript"), ("strings.js", "text/javascript"),
                       ("chat.css", "text/css")]:
        response = await site.client.get(f"/webchat/static/{name}")
        assert (response.status, response.content_type) == (200, kind)
    strings = await (await site.client.get("/webchat/static/strings.js")).text()
    assert '"zh-CN"' in strings and '"en"' in strings
    assert (await site.client.get("/webchat/static/routes.py")).status == 404
    assert (await site.client.get("/webchat/static/..%2Froutes.py")).status == 404


async def test_a_new_visitor_gets_a_signed_session_and_the_menu(site):
    tab = await site.tab()
    assert re.fullmatch(r"v1\.[0-9a-f]{24}\.\d+\.[A-Za-z0-9_-]{43}", tab.session)
    (menu,) = tab.greeting
    assert menu["type"] == "message" and menu["from"] == "bot"
    assert actions(menu) == ["menu:invest", "menu:borrow", "menu:faq", "menu:human",
                             "menu:language"]
    assert await site.count(conversations) == 0  # nothing is stored before the first word
    await tab.ws.close()


# Talking -------------------------------------------------------------------------------------

async def test_a_faq_question_is_answered_with_buttons(site):
    tab = await site.tab(lang="zh-CN")
    (answer,) = await tab.say("提现多久能到账啊？")
    found = knowledge_base().match("提现多久能到账啊？", "zh-CN")
    assert answer["from"] == "bot" and answer["name"] is None
    assert answer["text"] == knowledge_base().articles[found.article_id].answer_in("zh-CN")
    assert "talk_to_human" in actions(answer)
    assert all(b["label"] for b in answer["buttons"])
    assert answer["at"].startswith("2026-03-02T02:00")
    await tab.ws.close()


async def test_pressing_a_button_runs_its_action(site):
    tab = await site.tab(lang="en")
    (help_,) = await tab.tap("menu:faq")
    assert help_["text"] == site.engine.catalog.text("en", "help")
    assert "menu:invest" in actions(help_)
    (switched,) = await tab.tap("menu:language")
    assert switched["text"] == site.engine.catalog.text("zh-CN", "language_set")
    await tab.ws.close()


async def test_the_share_contact_button_is_left_out_because_a_browser_cannot_share_it(site):
    tab = await site.tab(lang="en")
    (ask,) = await tab.tap("menu:invest")
    assert ask["text"] == site.engine.catalog.text("en", "reg_ask_phone")
    assert "contact:request" not in actions(ask)
    await tab.ws.close()


async def test_a_resent_client_message_id_is_answered_once(site):
    tab = await site.tab()
    assert len(await tab.say("提现多久能到账啊？", client_id="c1")) == 1
    assert await tab.say("提现多久能到账啊？", client_id="c1") == []
    assert await site.count(chat_messages) == 2
    await tab.ws.close()


async def test_a_script_tag_comes_back_verbatim_as_text(site):
    text = '<script>alert("x")</script> & <b>hi</b>'
    first = await site.tab()
    second = await site.tab(first.session)
    await first.say(text, client_id="x1")
    echoed = await second.frame()  # the sibling tab shows what the user wrote, as text
    assert (echoed["from"], echoed["text"], echoed["client_id"]) == ("user", text, "x1")
    await first.ws.close()
    await second.ws.close()
    again = await site.tab(first.session)
    assert again.history[0] == {**again.history[0], "from": "user", "text": text}
    await again.ws.close()


# Sessions ------------------------------------------------------------------------------------

async def test_resuming_with_the_token_gets_the_history_oldest_first(site):
    tab = await site.tab(lang="en")
    (help_,) = await tab.tap("menu:faq")
    (answer,) = await tab.say("How long does a withdrawal take?")
    await tab.ws.close()

    back = await site.tab(tab.session)
    assert back.session is None and back.greeting == []  # no new session, no menu
    assert [m["from"] for m in back.history] == ["user", "bot", "user", "bot"]
    assert back.history[0]["text"] == tab.greeting[0]["buttons"][2]["label"]  # the press
    assert back.history[1]["text"] == help_["text"]
    assert back.history[1]["buttons"] == help_["buttons"]
    assert back.history[2]["text"] == "How long does a withdrawal take?"
    assert back.history[3]["text"] == answer["text"]
    ids = [m["id"] for m in back.history]
    assert ids == sorted(ids)
    await back.ws.close()


async def test_the_history_holds_at_most_the_last_200_messages(site):
    tab = await site.tab(lang="en")
    conversation = None
    await tab.say("hello")
    conversation = await site.conversation(tab.session)
    async with site.core.uow() as uow:
        await uow.conn.execute(chat_messages.insert(), [
            {"conversation_id": conversation, "sender": "bot", "text": f"n{n}", "at":
             site.core.clock.now()} for n in range(250)])
        await uow.commit()
    await tab.ws.close()
    back = await site.tab(tab.session)
    assert len(back.history) == 200
    assert back.history[-1]["text"] == "n249" and back.history[0]["text"] == "n50"
    await back.ws.close()


async def test_an_invalid_or_expired_token_gets_a_new_session_not_another_chat(site, clock):
    theirs = await site.tab()
    await theirs.say("提现多久能到账啊？")
    await theirs.ws.close()
    head, _, signature = theirs.session.rpartition(".")
    forged_signature = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_chat = re.sub(r"\.[0-9a-f]{24}\.", ".0123456789abcdef01234567.", theirs.session)
    for token in (forged_signature, other_chat, "garbage", "v1.x.1.y"):
        tab = await site.tab(token)
        assert tab.session is not None and tab.session != theirs.session
        assert tab.history is None
        await tab.ws.close()
    clock.advance(timedelta(days=31))
    late = await site.tab(theirs.session)
    assert late.session is not None and late.history is None
    await late.ws.close()


async def test_one_session_never_sees_another_sessions_chat(site):
    alice, bob = await site.tab(lang="en"), await site.tab(lang="en")
    await alice.say("alice's secret question about withdrawals")
    await bob.say("bob asks about interest")
    desk = AgentDesk(site.engine)
    async with site.core.uow() as uow:
        await desk.take(uow, await site.conversation(alice.session), "Alice")
        await uow.commit()
    assert (await alice.frame())["from"] == "system"
    assert await bob.silent()
    await alice.ws.close()
    await bob.ws.close()
    again = await site.tab(bob.session)
    texts = [m["text"] for m in again.history]
    assert "bob asks about interest" in texts
    assert not any("alice" in t.lower() for t in texts)
    await again.ws.close()


async def test_attribution_from_the_url_is_kept_on_the_channel_identity(site):
    campaign = await site.tab(utm_source="wechat", utm_campaign="spring sale!")
    await campaign.say("你好")
    referred = await site.tab(ref="FRIEND42")
    await referred.say("你好")
    only_campaign = await site.tab(utm_campaign="autumn")
    await only_campaign.say("你好")
    async with site.core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(select(
            channel_identities.c.campaign, channel_identities.c.referrer)
            .where(channel_identities.c.channel == "web")
            .order_by(channel_identities.c.id))).all()
    assert [tuple(r) for r in rows] == [("wechat_spring-sale", None), (None, "FRIEND42"),
                                        ("autumn", None)]
    for tab in (campaign, referred, only_campaign):
        await tab.ws.close()


# Limits ----------------------------------------------------------------------------------------

async def test_a_foreign_origin_is_refused_and_our_own_accepted(site):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await site.connect(origin="https://evil.example")
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await site.connect(origin="null")
    mine = await Tab(await site.connect()).opened()
    assert mine.session is not None
    await mine.ws.close()
    proxied = await site.client.ws_connect("/ws/chat", origin="https://chat.example", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example"})
    assert (await Tab(proxied).opened()).session is not None  # behind a TLS proxy
    await proxied.close()
    script = await site.connect(origin=None)  # not a browser: nothing to protect it from
    assert (await Tab(script).opened()).session is not None
    await script.close()


async def test_listed_origins_replace_our_own(database_url, clock, tmp_path, aiohttp_client):
    async with tight_site(database_url, clock, tmp_path, aiohttp_client,
                          webchat={"allowed_origins": ["https://shop.example"]}) as s:
        shop = await Tab(await s.connect(origin="https://SHOP.example:443")).opened()
        assert shop.session is not None
        await shop.ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.connect()
        assert refused.value.status == 403


async def test_a_too_long_message_is_refused_and_nothing_is_stored(site):
    tab = await site.tab(lang="en")
    await tab.ws.send_json({"type": "message", "text": "x" * 4001})
    error = await tab.frame()
    assert error["type"] == "error" and error["code"] == "too_long"
    assert "4000" in error["text"]
    assert await tab.silent()
    assert await site.count(chat_messages) == 0
    assert await site.count(conversations) == 0
    assert len(await tab.say("x" * 4000)) == 1  # the limit itself is fine
    await tab.ws.close()


async def test_malformed_frames_get_an_error_and_the_socket_stays_open(site):
    tab = await site.tab(lang="en")
    for frame in ("not json", "[1]", '{"type": "dance"}', '{"type": "message", "text": 5}',
                  '{"type": "action", "id": "has space"}'):
        await tab.ws.send_str(frame)
        assert (await tab.frame())["code"] == "bad_request"
    assert len(await tab.tap("menu:faq")) == 1
    await tab.ws.close()


async def test_messages_faster_than_the_rate_are_refused(database_url, clock, tmp_path,
                                                         aiohttp_client):
    async with tight_site(database_url, clock, tmp_path, aiohttp_client,
                          webchat={"messages_per_second": 1}) as s:
        tab = await s.tab(lang="en")
        for n in range(5):
            await tab.ws.send_json({"type": "message", "text": f"question {n}"})
        frames = []
        while len([f for f in frames if f["type"] in ("idle", "error")]) < 5:
            frames.append(await tab.frame())
        refused = [f for f in frames if f["type"] == "error"]
        assert refused and all(f["code"] == "slow_down" for f in refused)
        assert len(refused) >= 2  # a burst of two passes, then one a second
        answered = 5 - len(refused)
        async with s.core.uow(read_only=True) as uow:
            stored = (await uow.conn.execute(select(func.count()).where(
                chat_messages.c.sender == "user"))).scalar_one()
        assert stored == answered
        await tab.ws.close()


async def test_connections_per_ip_are_limited_before_the_upgrade(database_url, clock, tmp_path,
                                                                 aiohttp_client):
    async with tight_site(database_url, clock, tmp_path, aiohttp_client,
                          webchat={"connections_per_ip": 2}) as s:
        first, second = await s.connect(), await s.connect()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.connect()
        assert refused.value.status == 429
        await first.close()
        for _ in range(100):  # the server notices the close
            if s.client.app[WEBCHAT].connections.open.get("127.0.0.1", 0) < 2:
                break
            await asyncio.sleep(0.01)
        third = await s.connect()
        await second.close()
        await third.close()


async def test_shutting_down_closes_the_sockets_as_going_away(site):
    tab = await site.tab()
    await site.client.app[WEBCHAT].shutdown(site.client.app)
    closed = await asyncio.wait_for(tab.ws.receive(), 5)
    assert closed.type == WSMsgType.CLOSE and closed.data == 1001


# Uploads and agents -----------------------------------------------------------------------------

async def register(site: Site, tab: Tab) -> None:
    """Open an account through the chat itself."""
    await tab.tap("menu:invest")
    await tab.say("13912345678")
    (consent,) = await tab.say(site.core.sms.last_code("+8613912345678"))
    assert actions(consent) == ["reg:agree", "reg:decline"]
    await tab.tap("reg:agree")


async def test_a_registered_user_uploads_a_photo_that_is_kept_as_a_document(site):
    tab = await site.tab(lang="en")
    status, answer = await site.upload(tab.session, JPEG)
    assert status == 200  # before registering: asked to register first
    assert answer["messages"][0]["text"] == site.engine.catalog.text("en",
                                                                     "document_needs_account")
    await register(site, tab)
    status, answer = await site.upload(tab.session, JPEG)
    assert status == 200
    assert [m["text"] for m in answer["messages"]] == [
        site.engine.catalog.text("en", "document_saved")]
    async with site.core.uow(read_only=True) as uow:
        stored = (await uow.conn.execute(select(documents.c.content_type, documents.c.size)))
        assert [tuple(r) for r in stored] == [("image/jpeg", len(JPEG))]
    await tab.ws.close()


async def test_an_upload_needs_a_valid_session_and_a_file_within_the_limit(
        database_url, clock, tmp_path, aiohttp_client):
    async with tight_site(database_url, clock, tmp_path, aiohttp_client,
                          kyc={"document_max_bytes": 2048}) as s:
        tab = await s.tab(lang="en")
        status, answer = await s.upload("v1.forged", JPEG)
        assert (status, answer["code"]) == (401, "session_invalid")
        status, answer = await s.upload(tab.session, JPEG + bytes(2048))
        assert (status, answer["code"]) == (413, "file_too_large")
        status, answer = await s.upload(tab.session, b"")
        assert (status, answer["code"]) == (400, "no_file")
        response = await s.client.post("/webchat/upload", data=b"{}",
                                       headers={"Content-Type": "application/json"})
        assert (response.status, (await response.json())["code"]) == (400, "bad_request")
        assert await s.count(chat_messages) == 0
        await tab.ws.close()


async def test_an_agents_messages_reach_every_open_tab_of_the_session(site):
    tab = await site.tab(lang="en")
    await tab.say("I want to talk to a person about my loan")
    other_tab = await site.tab(tab.session)
    conversation = await site.conversation(tab.session)
    desk = AgentDesk(site.engine)
    async with site.core.uow() as uow:
        await desk.take(uow, conversation, "Alice")
        await uow.commit()
    async with site.core.uow() as uow:
        await desk.say(uow, conversation, "Alice", "Hello, I am Alice. <script>x</script>")
        await uow.commit()
    for t in (tab, other_tab):
        joined, said = await t.frame(), await t.frame()
        assert joined["from"] == "system"
        assert joined["text"] == site.engine.catalog.text("en", "agent_joined", agent="Alice")
        assert (said["from"], said["name"], said["text"]) == (
            "agent", "Alice", "Hello, I am Alice. <script>x</script>")
        assert isinstance(said["id"], int)
    assert await tab.say("thanks") == []  # the bot stays quiet while Alice holds the chat
    echoed = await other_tab.frame()
    assert (echoed["from"], echoed["text"]) == ("user", "thanks")
    await tab.ws.close()
    await other_tab.ws.close()


async def test_a_second_tab_sees_the_turns_of_the_first(site):
    first = await site.tab(lang="en")
    second = await site.tab(first.session)
    (help_,) = await first.tap("menu:faq")
    pressed, shown = await second.frame(), await second.frame()
    assert (pressed["from"], pressed["text"]) == ("user", first.greeting[0]["buttons"][2]
                                                  ["label"])
    assert shown["text"] == help_["text"]
    await first.ws.close()
    await second.ws.close()


async def test_a_notice_reaches_an_open_page_at_once_and_stays_in_the_history(site):
    tab = await site.tab(lang="en")
    await register(site, tab)
    async with site.core.uow(read_only=True) as uow:
        user_id = (await uow.conn.execute(select(channel_identities.c.user_id).where(
            channel_identities.c.channel == "web"))).scalar_one()
    params = {"status": "verified"}
    async with site.core.uow() as uow:
        await notify.enqueue(uow, user_id, "kyc_result", params, "kyc-web-1")
        assert (await Dispatcher(site.engine).run_once(uow)).handed == 1
        await uow.commit()
    expected = render_notice(site.engine.catalog, "kyc_result", params, "en")
    pushed = await tab.frame()
    assert (pushed["from"], pushed["text"]) == ("system", expected.text)
    assert [b["id"] for b in pushed["buttons"]] == [b.action for b in expected.buttons]
    later = await site.tab(tab.session)  # a page opened later finds it in the history
    assert later.history[-1]["text"] == expected.text
