"""The web chat and the console in a real browser, two contexts: a customer in the widget asks
for a human; an agent signs in, claims from the live queue, sees the context panel and replies;
the customer sees the reply with the agent's name; the agent resolves; the customer rates. What
customers type shows as text everywhere (a <script> stays text). Screenshots as artifacts."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser
SCRIPT = "<script>window.pwned=1</script> hello"


async def test_a_widget_customer_is_taken_over_answered_and_rates(core, site, browser):
    await site.staff(core, "alice", display="Alice")
    customer = await (await browser.new_context(locale="en-US")).new_page()
    await customer.goto(f"{site.url}/?lang=en&utm_source=wx&utm_campaign=spring")
    log = customer.locator("#chat-log")
    await log.locator(".msg--bot").first.wait_for()  # the welcome menu

    await customer.fill("#chat-input", SCRIPT)
    await customer.press("#chat-input", "Enter")
    await log.locator(".msg--user", has_text="hello").wait_for()
    assert await customer.evaluate("window.pwned") is None
    await customer.fill("#chat-input", "I want to talk to a human")
    await customer.press("#chat-input", "Enter")
    await log.locator(".msg--system", has_text="queue").wait_for()
    await screenshot(customer, "widget-queued")

    agent_context = await browser.new_context()
    console = await sign_in(agent_context, site, "alice")
    row = console.locator("#queue tbody tr[data-id]").first
    await row.wait_for()
    assert "web" in await row.inner_text()
    async with console.expect_navigation():
        await row.locator("button", has_text="Claim").click()
    messages = console.locator("#messages")
    assert SCRIPT in await messages.inner_text()  # shown as text, not run
    assert await console.evaluate("window.pwned") is None
    assert "Not registered" in await console.locator("aside.context").inner_text()
    await console.fill("#reply-text", "Hi, Alice here. How can I help?")
    async with console.expect_navigation():
        await console.click("form.reply button[type=submit]")
    await screenshot(console, "console-web-customer")

    reply = log.locator(".msg--agent", has_text="Alice here")
    await reply.wait_for()
    assert "Alice" in await reply.locator(".msg__name").inner_text()
    await customer.fill("#chat-input", "my withdrawal is late")
    await customer.press("#chat-input", "Enter")
    await messages.locator("li.from-user", has_text="withdrawal is late").wait_for()  # live

    async with console.expect_navigation():
        await console.click("form[action$='/resolve'] button")
    rate = log.locator(".msg--system .msg__button", has_text="★★★★★")
    await rate.wait_for()
    await rate.click()
    await log.locator(".msg--system", has_text="Thank you for your rating").wait_for()
    await screenshot(customer, "widget-rated")
    await agent_context.close()
    await customer.context.close()


async def test_the_widget_embeds_with_one_script_tag(core, site, browser):
    page = await (await browser.new_context()).new_page()
    await page.set_content(f'<html><body><h1>Shop</h1><script src="{site.url}/widget.js">'
                           f'</script></body></html>')
    frame = page.locator("iframe")
    launcher = page.locator("button").first
    await launcher.wait_for()
    await launcher.click()
    await frame.wait_for()
    chat = page.frame_locator("iframe")
    await chat.locator("#chat-log .msg--bot").first.wait_for()
    await screenshot(page, "widget-embedded")
    await page.context.close()
