"""Try the Telegram bot without Telegram: ``python run.py telegram-sandbox``.

Starts the local Bot API server, the whole product wired to it (the same ``create_app`` as
``serve``, with a sandbox bot token), and a terminal chat as a fake user: type a message and the
bot's answers are printed with their buttons numbered; ``#2`` presses button 2 of the latest
message, ``/contact +8613912345678`` shares a phone number as your own contact, ``/quit`` stops.
The local server keeps listening for other clients too (``/_test/*`` hooks, see
``bots/telegram/local_api.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

from aiohttp import web

from bots.telegram.local_api import LocalBotApi
from config.settings import Settings

TOKEN = "100000001:SANDBOX-local-bot"
USER = 10_001


async def run_sandbox(settings: Settings, *, api_port: int = 8081, user_id: int = USER,
                      language: str = "zh-hans") -> None:
    from bots.server import create_app
    from core.bootstrap import bootstrap

    # update ids must keep rising across sandbox sessions (the product remembers them)
    async with LocalBotApi(tokens=[TOKEN], port=api_port,
                           first_update_id=int(time.time() * 1000)) as server:
        sandboxed = settings.model_copy(update={
            "telegram_token": settings.telegram_token or _secret(TOKEN),
            "telegram_api_url": f"{server.url}/bot", "telegram_mode": "polling"})
        core = await bootstrap(sandboxed)
        runner = web.AppRunner(create_app(core))
        await runner.setup()
        await web.TCPSite(runner, sandboxed.http_host, sandboxed.http_port).start()
        print(f"local Bot API at {server.url}; product at "
              f"http://{sandboxed.http_host}:{sandboxed.http_port}/. You are Telegram user "
              f"{user_id}. Type a message; #N presses button N; /quit stops.")
        try:
            await _chat(server, user_id, language)
        finally:
            await runner.cleanup()


async def _chat(server: LocalBotApi, user_id: int, language: str) -> None:
    loop = asyncio.get_running_loop()
    shown = 0
    buttons: list[tuple[int, str]] = []
    while True:
        line = await loop.run_in_executor(None, _read)
        if line is None or line.strip() == "/quit":
            return
        line = line.strip()
        if not line:
            continue
        if line.startswith("#") and line[1:].isdigit() and 0 < int(line[1:]) <= len(buttons):
            message_id, data = buttons[int(line[1:]) - 1]
            server.inject_callback(user_id, message_id, data, language_code=language,
                                   strict=False)
        elif line.startswith("/contact "):
            server.inject_contact(user_id, line.split(maxsplit=1)[1], language_code=language)
        else:
            server.inject_message(user_id, line, language_code=language)
        with contextlib.suppress(TimeoutError):
            await server.wait_for(user_id, shown + 1, timeout=10)
        await asyncio.sleep(0.3)  # let a turn's further replies arrive
        messages = server.sent(user_id)
        for message in messages[shown:]:
            buttons = _print(message) or buttons
        shown = len(messages)


def _print(message: dict[str, Any]) -> list[tuple[int, str]]:
    print(f"\n{message.get('text') or message.get('caption') or ''}")
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    keys = [(message["message_id"], b["callback_data"], b["text"]) for row in rows for b in row]
    for n, (_, _, label) in enumerate(keys, 1):
        print(f"  [#{n}] {label}")
    return [(message_id, data) for message_id, data, _ in keys]


def _read() -> str | None:
    try:
        return input("> ")
    except EOFError:
        return None


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


if __name__ == "__main__":  # pragma: no cover - python -m bots.telegram.sandbox
    from config.settings import load_settings

    asyncio.run(run_sandbox(load_settings()))
    sys.exit(0)
