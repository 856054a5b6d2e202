"""The agent console in a real browser: a Telegram customer asks for a human through the local
Bot API server; an agent signs in, claims the chat from the live queue, sees the masked
context, replies (the customer reads it in Telegram), resolves; the customer rates."""

from __future__ import annotations

import pytest

from bots.server import CHANNELS
from tests.browser.conftest import screenshot, sign_in
from tests.integration.telegram_helpers import telegram

pytestmark = pytest.mark.browser


async def test_an_agent_takes_over_a_telegram_customer_in_the_console(core, tmp_path, site,
                                                                      browser):
    await site.staff(core, "alice", display="Alice")
    engine = site.app[CHANNELS].engine
    async with telegram(core, tmp_path, engine=engine) as tg:
        me = tg.user("en")
        await me.say("/start")
        await me.say("<b>hello</b> my withdrawal is stuck")
        (waiting,) = await me.say("/human")
        assert waiting["text"] == me.t("human_queued", ahead=0)

        context = await browser.new_context()
        page = await sign_in(context, site, "alice")
        row = page.locator("#queue tbody tr").first
        assert "telegram" in await row.inner_text()
        await screenshot(page, "console-queue")
        async with page.expect_navigation():
            await row.locator("button", has_text="Claim").click()
        assert "/console/c/" in page.url
        assert "<b>hello</b> my withdrawal is stuck" in \
            await page.locator("#messages").inner_text()
        await page.fill("#reply-text", "Hello, Alice here. Let me check your withdrawal.")
        async with page.expect_navigation():
            await page.click("form.reply button[type=submit]")
        await screenshot(page, "console-conversation")
        tg.adapter.sender.poke()
        await tg.idle()
        got = [m["text"] for m in me.new()]
        assert got == [me.t("agent_joined", agent="Alice"),
                       "Hello, Alice here. Let me check your withdrawal."]

        async with page.expect_navigation():
            await page.click("form[action$='/resolve'] button")
        assert page.url == f"{site.url}/console"
        tg.adapter.sender.poke()
        await tg.idle()
        (ask,) = me.new()
        assert ask["text"] == me.t("rate_ask")
        (thanks,) = await me.tap("rate:5")
        assert thanks["text"] == me.t("rate_thanks")
        await context.close()
