"""The Telegram bot end to end: python-telegram-bot and the product against the local Bot API
server, users played through its test hooks."""

from __future__ import annotations

from sqlalchemy import select

from core.adapters.tables import channel_identities
from tests.integration.telegram_helpers import actions, telegram


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
