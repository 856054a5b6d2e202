"""The dialog engine in-process: turns, redelivery, language, FAQ, handover, idle reset."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core.adapters.tables import analytics_events, conversations, faq_misses
from core.domain.errors import InvalidPhone
from knowledge_base import KnowledgeBase

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def engine(core, kb) -> DialogEngine:
    return DialogEngine(core, kb, Catalog.load())


def said(chat: str, text: str | None = None, *, action: str | None = None,
         locale: str | None = "zh-CN", payload: str | None = None,
         message_id: str | None = None) -> Inbound:
    return Inbound("telegram", chat, message_id or f"m{next(_ids)}", text=text, action=action,
                   locale_hint=locale, payload=payload)


async def test_start_greets_with_the_menu_and_keeps_the_campaign(core, engine):
    (reply,) = await engine.handle(said("c1", "/start spring_ads", payload="spring_ads"))
    assert "欢迎" in reply.text and "风险" in reply.text
    assert [b.action for b in reply.buttons] == ["menu:invest", "menu:borrow", "menu:faq",
                                                 "menu:human", "menu:language"]
    async with core.uow(read_only=True) as uow:
        event = (await uow.conn.execute(select(analytics_events.c.name,
                                               analytics_events.c.campaign))).one()
    assert tuple(event) == ("first_visit", "spring_ads")


async def test_a_redelivered_message_is_answered_once(engine):
    first = await engine.handle(said("c2", "/start", message_id="same"))
    again = await engine.handle(said("c2", "/start", message_id="same"))
    assert first and again == []


async def test_the_language_follows_the_channel_and_can_be_switched(core, engine):
    (hello,) = await engine.handle(said("c3", "/start", locale="en-US"))
    assert hello.text.startswith("Hello")
    (switched,) = await engine.handle(said("c3", action="menu:language"))
    assert switched.text == "已切换为中文。"
    (answer,) = await engine.handle(said("c3", "提现多久到账"))
    assert "工作日" in answer.text


async def test_a_clear_question_is_answered_with_related_actions_and_a_human(engine, kb):
    (reply,) = await engine.handle(said("c4", "提现多久能到账啊？"))
    found = kb.match("提现多久能到账啊？", "zh-CN")
    assert reply.text == kb.articles[found.article_id].answer_in("zh-CN")
    assert reply.buttons[-1].action == "talk_to_human"


async def test_two_misses_in_a_row_offer_a_human_and_are_logged(core, engine):
    (first,) = await engine.handle(said("c5", "今天天气怎么样"))
    (second,) = await engine.handle(said("c5", "给我讲个笑话吧"))
    assert first.text.startswith("抱歉") and "人工" in second.text
    assert [b.action for b in second.buttons] == ["talk_to_human"]
    async with core.uow(read_only=True) as uow:
        logged = (await uow.conn.execute(select(faq_misses.c.text))).scalars().all()
    assert logged == ["今天天气怎么样", "给我讲个笑话吧"]


async def test_a_complaint_jumps_the_human_queue(core, engine):
    await engine.handle(said("c6", "转人工"))
    (asked,) = await engine.handle(said("c7", "I want a human", locale="en"))
    (angry,) = await engine.handle(said("c8", "你们是骗子，我要投诉！"))
    assert "1" in asked.text  # one conversation waited before it
    assert "0 位" in angry.text  # complaints go first
    async with core.uow(read_only=True) as uow:
        queue = (await uow.conn.execute(
            select(conversations.c.chat_id, conversations.c.handover_reason)
            .where(conversations.c.mode == "queued")
            .order_by(conversations.c.priority.desc(), conversations.c.queued_at,
                      conversations.c.id))).all()
    assert [tuple(q) for q in queue] == [("c8", "complaint"), ("c6", "asked"), ("c7", "asked")]
    (waiting,) = await engine.handle(said("c6", "还要多久"))
    assert waiting.text == "人工客服正在接入，请稍候。"


async def test_a_flow_left_idle_resets_with_a_short_notice(core, engine):
    await engine.handle(said("c9", "/start"))
    async with core.uow() as uow:
        await uow.conn.execute(update(conversations).where(conversations.c.chat_id == "c9")
                               .values(flow="invest", step="amount"))
        await uow.commit()
    core.clock.advance(timedelta(minutes=31))
    notice, *_ = await engine.handle(said("c9", "/help"))
    assert notice.sender == "system" and "重置" in notice.text


async def test_a_restarted_process_continues_the_conversation(core, engine, kb, database_url,
                                                              clock, tmp_path):
    from tests.support import make_core

    await engine.handle(said("c10", "/start", locale="en"))
    await engine.handle(said("c10", action="menu:language"))  # now Chinese
    restarted = await make_core(database_url, clock, tmp_path / "again")
    try:
        (reply,) = await DialogEngine(restarted, kb, Catalog.load()).handle(
            said("c10", "/help", locale="en"))
    finally:
        await restarted.close()
    assert reply.text.startswith("您可以直接输入问题")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_new_investor_registers_in_chat(core, engine, locale):
    from core.adapters.tables import users

    chat = f"reg-{locale}"
    await engine.handle(said(chat, "/start", locale=locale))
    (ask,) = await engine.handle(said(chat, action="menu:invest", locale=locale))
    assert ask.text == engine.catalog.text(locale, "reg_ask_phone")
    (bad,) = await engine.handle(said(chat, "12345", locale=locale))
    assert bad.text == engine.catalog.error(locale, InvalidPhone())
    (sent,) = await engine.handle(said(chat, "139 0000 1234", locale=locale))
    assert "139****1234" in sent.text
    code = core.sms.last_code("+8613900001234")
    (oops,) = await engine.handle(said(chat, "12ab", locale=locale))
    assert oops.text == engine.catalog.text(locale, "reg_code_format")
    (consent,) = await engine.handle(said(chat, code, locale=locale))
    assert [b.action for b in consent.buttons] == ["reg:agree", "reg:decline"]
    (done,) = await engine.handle(said(chat, action="reg:agree", locale=locale))
    assert done.buttons[0].action == "menu:kyc"
    async with core.uow(read_only=True) as uow:
        user = (await uow.conn.execute(select(users.c.is_investor, users.c.referral_code))
                ).one()
        state = (await uow.conn.execute(select(conversations.c.flow, conversations.c.data)
                                        .where(conversations.c.chat_id == chat))).one()
    assert user.is_investor and user.referral_code in done.text
    assert state.flow is None and state.data is None


async def test_a_wrong_code_asks_again_and_keeps_the_phone(core, engine):
    await engine.handle(said("reg-x", action="menu:borrow"))
    await engine.handle(said("reg-x", "13900005678"))
    code = core.sms.last_code("+8613900005678")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await engine.handle(said("reg-x", wrong))
    error, ask = await engine.handle(said("reg-x", action="reg:agree"))
    assert "4" in error.text and ask.text == engine.catalog.text("zh-CN", "reg_ask_code")
    await engine.handle(said("reg-x", code))
    (done,) = await engine.handle(said("reg-x", action="reg:agree"))
    assert done.text.startswith("注册成功")
    async with core.uow(read_only=True) as uow:
        stored = (await uow.conn.execute(select(conversations.c.data))).all()
    assert all("13900005678" not in repr(row) for row in stored)  # kept only encrypted


async def test_a_burst_of_chats_is_answered_in_few_transactions_each_as_if_alone(engine):
    import asyncio

    before = engine.desk.batches
    inbounds = [said(f"burst-{n}", "/start") for n in range(60)]
    # one chat sends two things at once: the second must see what the first changed
    inbounds += [said("burst-0", action="menu:language"), said("burst-0", "/help")]
    replies = await asyncio.gather(*(engine.handle(i) for i in inbounds))
    assert all(r and "欢迎" in r[0].text for r in replies[:60])
    assert replies[60][0].text == "Switched to English."
    assert replies[61][0].text.startswith("Type a question")
    assert engine.desk.batches - before <= 3
    await engine.close()
