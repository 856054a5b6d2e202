"""The Telegram bot end to end: python-telegram-bot and the product against the local Bot API
server, users played through its test hooks."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sqlalchemy import func, select

from bots.telegram.adapter import SECRET_HEADER
from bots.telegram.local_api import LocalBotApi
from core import delivery
from core.adapters.tables import channel_identities, deliveries, inbound_log
from tests.integration.telegram_helpers import SECRET, TOKEN, actions, telegram, texts


async def test_start_with_a_campaign_payload_greets_with_the_menu_and_keeps_the_campaign(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        (welcome,) = await me.say("/start spring_2026")
        assert welcome["text"] == me.t("welcome")
        assert "menu:invest" in actions(welcome)
        async with core.uow(read_only=True) as uow:
            row = (await uow.conn.execute(select(channel_identities).where(
                channel_identities.c.external_id == me.chat))).one()
        assert row.campaign == "spring_2026" and row.locale == "en"


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_question_is_answered_in_polling_and_webhook_mode(core, tmp_path, mode):
    async with telegram(core, tmp_path, mode=mode) as tg:
        me = tg.user("zh-CN")
        (answer,) = await me.say("提现多久能到账？")
        assert "talk_to_human" in actions(answer)
        article = tg.engine.kb.match("提现多久能到账？", "zh-CN")
        assert article is not None
        assert answer["text"] == tg.engine.kb.articles[article.article_id].answer_in("zh-CN")
        info = await tg.adapter.app.bot.get_webhook_info()
        assert bool(info.url) == (mode == "webhook")


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_redelivered_update_changes_nothing_and_sends_nothing(core, tmp_path, mode):
    async with telegram(core, tmp_path, mode=mode) as tg:
        me = tg.user("en")
        await me.say("/start")
        update = tg.server.inject_message(me.id, "/help", language_code="en")
        await tg.settled(me.id, update["update_id"])
        assert texts(me.new()) == [me.t("help")]
        tg.server.requeue(update["update_id"])
        if mode == "webhook":
            await tg.server.wait_for_call("sendMessage", 2, chat_id=me.id)  # nothing more
        marker = await me.say("/start")  # processed after the redelivered one
        assert texts(marker) == [me.t("welcome")]
        async with core.uow(read_only=True) as uow:
            logged = (await uow.conn.execute(select(func.count()).select_from(inbound_log)
                      .where(inbound_log.c.message_id == str(update["update_id"])))
                      ).scalar_one()
        assert logged == 1
        assert len(tg.server.calls_to("sendMessage", me.id)) == 3


async def test_a_forged_webhook_without_the_secret_is_refused(core, tmp_path):
    async with telegram(core, tmp_path, mode="webhook") as tg:
        url = tg.adapter.settings.telegram_webhook_url
        update = {"update_id": 99, "message": {
            "message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "Eve"}, "text": "/start"}}
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {SECRET_HEADER: "guess"}):
                async with session.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
            async with session.post(url, data=b"not json",
                                    headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 400
        async with core.uow(read_only=True) as uow:
            assert (await uow.conn.execute(select(func.count()).select_from(inbound_log))
                    ).scalar_one() == 0
        assert tg.server.sent(5) == []


async def test_a_rate_limited_chat_waits_its_retry_after_while_another_keeps_flowing(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        slow, other = tg.user("en"), tg.user("en")
        tg.server.fail_next("sendMessage", status=429, retry_after=1, chat_id=slow.id)
        started = time.monotonic()
        update = tg.server.inject_message(slow.id, "/start", language_code="en")
        await asyncio.sleep(0.05)
        for _ in range(3):
            assert texts(await other.say("/help")) == [other.t("help")]
        other_done = time.monotonic()
        await tg.settled(slow.id, update["update_id"])
        calls = tg.server.calls_to("sendMessage", slow.id)
        assert [c.status for c in calls] == [429, 200]
        assert calls[1].at - calls[0].at >= 0.95  # waited retry_after for this chat only
        assert other_done - started < 0.9  # the other chat did not wait for it
        assert texts(slow.new()) == [slow.t("welcome")]


async def test_messages_to_one_chat_are_paced_and_server_errors_retried(core, tmp_path):
    async with telegram(core, tmp_path, delivery={"per_chat_interval_ms": 200}) as tg:
        me = tg.user("en")
        tg.server.fail_next("sendMessage", status=502, chat_id=me.id, times=2)
        update = tg.server.inject_message(me.id, "/start", language_code="en")
        await tg.settled(me.id, update["update_id"])
        assert texts(me.new()) == [me.t("welcome")]
        assert texts(await me.say("/help")) == [me.t("help")]
        calls = tg.server.calls_to("sendMessage", me.id)
        assert [c.status for c in calls] == [502, 502, 200, 200]
        assert calls[3].at - calls[2].at >= 0.19


async def test_a_user_who_blocked_the_bot_is_marked_unreachable_until_they_write_again(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("zh-CN")
        await me.say("/start")
        tg.server.block(me.id)
        update = tg.server.inject_message(me.id, "/help", language_code="zh-hans")
        await tg.settled(me.id, update["update_id"])
        async with core.uow(read_only=True) as uow:
            assert await delivery.is_unreachable(uow, "telegram", me.chat)
            statuses = (await uow.conn.execute(select(deliveries.c.status).where(
                deliveries.c.chat_id == me.chat).order_by(deliveries.c.id))).scalars().all()
        assert statuses == ["sent", "dropped"]
        tg.server.unblock(me.id)
        assert texts(await me.say("/help")) == [me.t("help")]
        async with core.uow(read_only=True) as uow:
            assert not await delivery.is_unreachable(uow, "telegram", me.chat)


async def test_long_texts_are_split_and_user_text_is_escaped(core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        await me.say("/start")
        long_text = "<b>not bold</b> & " + ("lorem ipsum dolor sit amet\n" * 300)
        async with core.uow() as uow:
            await delivery.add_many(uow, [{"channel": "telegram", "chat_id": me.chat,
                                           "text": long_text, "kind": "notice",
                                           "buttons": [{"id": "menu:faq", "label": "FAQ"}]}])
            await uow.commit()
        tg.adapter.sender.poke()
        await tg.idle()
        parts = me.new()
        assert len(parts) == 2 and all(len(p["text"]) <= 4096 for p in parts)
        assert parts[0]["text"].startswith("<b>not bold</b> & lorem")  # shown as typed
        assert actions(parts[0]) == [] and actions(parts[1]) == ["menu:faq"]
        assert "".join(p["text"] for p in parts).count("lorem") == 300


async def test_a_button_press_is_answered_and_its_keyboard_removed(core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        (welcome,) = await me.say("/start")
        (menu,) = await me.tap("menu:faq")
        assert menu["text"] == me.t("help")
        assert len(tg.server.answered_callbacks) == 1
        (pressed,) = [m for m in tg.server.sent(me.id)
                      if m["message_id"] == welcome["message_id"]]
        assert actions(pressed) == []  # a finished step cannot be pressed again


async def test_commands_are_set_in_both_languages(core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        for language, locale in (("zh", "zh-CN"), ("en", "en")):
            commands = tg.server.commands({"type": "default"}, language)
            assert [c["command"] for c in commands] == ["start", "help", "language", "cancel",
                                                        "human", "notifications"]
            assert commands[4]["description"] == tg.engine.catalog.text(locale,
                                                                        "command_human")


async def test_replies_queued_before_a_crash_are_sent_after_restart(core, tmp_path):
    async with LocalBotApi(tokens=[TOKEN]) as server:
        async with telegram(core, tmp_path, server=server) as tg:
            me = tg.user("en")
            await me.say("/start")
            tg.adapter.sender.start = lambda: None  # the next process dies before sending
        async with core.uow() as uow:  # what the turn of a crashed process left behind
            await delivery.add_many(uow, [{"channel": "telegram", "chat_id": me.chat,
                                           "text": "after the crash", "kind": "reply"}])
            await uow.commit()
        async with telegram(core, tmp_path, server=server) as tg:
            await tg.idle()
            assert texts(me.new()) == ["after the crash"]


async def test_a_chats_updates_in_one_polling_batch_are_handled_in_their_order(core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        (welcome,) = await me.say("/start")
        press = tg.server.inject_callback(me.id, welcome["message_id"], "menu:faq",
                                          language_code="en")
        switch = tg.server.inject_message(me.id, "/language", language_code="en")
        await tg.settled(me.id, press["update_id"])
        await tg.settled(me.id, switch["update_id"])
        help_text, switched = me.new()
        assert help_text["text"] == me.t("help")  # the press first, still in English
        assert switched["text"] == tg.engine.catalog.text("zh-CN", "language_set")
