"""Browser tests: the product served on a free port, driven by Playwright in Debian's headless
Chromium (``executable_path``; no browser downloaded by Playwright). Screenshots go to
``tests/artifacts/`` (kept by CI as test artifacts, ignored by git)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bots.server import create_app
from bots.web.auth import STAFF
from tests.integration.console_helpers import FAST, PASSWORD, staff_member

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            await browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    def __init__(self, app: web.Application, url: str) -> None:
        self.app, self.url = app, url

    async def staff(self, core, name: str, role: str = "agent", display: str | None = None):
        return await staff_member(self.app, core, name, role, display)


@pytest.fixture
async def site(core) -> AsyncIterator[Site]:
    """The product's app (create_app) listening on a free port of 127.0.0.1."""
    app = create_app(core, close_core=False, background=False)
    app[STAFF].hasher = FAST
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Site(app, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(context, site: Site, name: str):
    page = await context.new_page()
    await page.goto(f"{site.url}/console")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', PASSWORD)
    async with page.expect_navigation():
        await page.click('main button[type="submit"]')
    assert page.url == f"{site.url}/console", page.url
    return page
