"""Telegram end to end: updates per second through the local Bot API server, python-telegram-bot,
the dialog engine, SQLite and ``sendMessage`` back, in polling and in webhook mode.

``--chats`` users (default 250) talk to the bot at once, each sending ``--turns-per-chat``
updates (default 7) in order: the script of ``bench/dialog.py`` (``build_scripts``, same seed),
so ``/start`` (every fifth with a campaign payload), knowledge-base questions reworded, a
language switch, the ``menu:faq`` button (a callback query on the latest bot message that shows
it), ``/help``. Half the users write in Chinese (``language_code`` ``zh-hans``), half in English.

A closed loop, as ``bench/dialog.py`` runs the engine alone: each user's first update is
injected at once, and each next one as soon as the server has recorded the bot's replies to the
previous one, so a chat never has two updates in flight (nor two in one ``getUpdates`` batch: how
the adapter orders those is not exercised here). The users' side runs inside the Bot API
server's own process (``BenchBotApi``: the shipped ``bots.telegram.local_api.LocalBotApi`` plus
a driver on its in-process hooks, reached over its ``/_test/`` routes), so neither the server's
work nor the injection is counted against the product, and no injection goes over HTTP. The wall
time runs from the first injection to the last expected reply recorded by the server; latency
is per update, from its injection to its last reply recorded (both clocks in the server
process).

* ``engine`` (the baseline, measured in the same run on the same machine): ``engine.handle`` on
  the same script, no Telegram at all (``bench/dialog.py``'s ``timed_run`` and ``product_turn``).
* ``polling``: ``TelegramAdapter`` in polling mode (its own ``getUpdates`` loop, up to 100
  updates a call, each batch processed concurrently and confirmed by the next call).
* ``webhook``: ``TelegramAdapter.webhook`` on an aiohttp app on a free port; the server POSTs
  each update with the secret header. The shipped local server POSTs one update at a time;
  Telegram uses up to ``max_connections`` (40 unless ``setWebhook`` says otherwise) connections
  at once and sends a chat's updates one after another (https://grammy.dev/guide/deployment-types
  "Ending Webhook Requests in Time"). ``BenchBotApi`` does the same with
  ``--webhook-connections`` (default 40); ``--webhook-connections 1`` uses the shipped server's
  own one-at-a-time delivery.

Replies are queued in the turn's transaction (``core.delivery``) and sent by the adapter's
``TelegramSender``. Telegram's pace (about one message a second a chat and 30 a second in all)
would cap any run at 30 updates/s; the local server has no such limits, so the pace is switched
off (``delivery.per_chat_interval_ms=0``, ``per_second=100000``) to measure processing.

Every run works on a fresh copy of one migrated SQLite template (``bench/dialog.py``'s ``Store``)
and a bot token of its own on the one server process. After each run (untimed) it checks that
every chat got exactly the replies the engine-only run gave (texts and buttons, in order), that
every update is in ``inbound_log`` once, that no delivery is left pending or sending (after the
sender's batched confirmations land), and counts the Bot API calls made. CPU time is the
process's (``time.process_time``, aiosqlite's thread included) over the timed part, per update.

Targets (SQLite): at least 1,000 updates/s in each mode, and at least half the engine-only rate.
``--profile`` adds one run per mode under cProfile (the bot process's event-loop thread only)
and prints where its time goes.

    .venv/bin/python bench/telegram.py [--chats N] [--turns-per-chat T] [--repeat K]
                                       [--mode polling|webhook|both] [--webhook-connections C]
                                       [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and this very file would then
# shadow python-telegram-bot's ``telegram`` package: the project root takes its place.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 - the imports below need the project root on sys.path.
import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import pstats
import socket
import statistics
import tempfile
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy import distinct, func, select

from bench.dialog import (
    Run,
    Step,
    Store,
    build_scripts,
    group_own_time,
    p50_ms,
    p99_ms,
    percentile,
    print_top_functions,
    product_turn,
    timed_run,
)
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.telegram.adapter import TelegramAdapter
from bots.telegram.local_api import JSON, LocalBotApi, WebhookDelivery
from bots.telegram.sender import CALLBACK_LIMIT
from core.adapters.tables import chat_messages, conversations, deliveries, inbound_log
from core.bootstrap import Core
from knowledge_base import KnowledgeBase
from tests.support import make_settings

if TYPE_CHECKING:  # the server's own records, which BenchBotApi extends
    from bots.telegram.local_api import _Bot, _Queued

log = logging.getLogger(__name__)
MODES = ("polling", "webhook")
TARGET_RATE = 1_000.0  # updates per second, each mode
TARGET_SHARE = 0.5  # of the engine-only rate
FIRST_CHAT = 5_000_001  # Telegram user (= private chat) id of the first user
LANGUAGE_CODES = {"zh-CN": "zh-hans", "en": "en"}  # what Telegram clients send
SECRET = "bench-webhook-secret"
PACE = {"per_chat_interval_ms": 0, "per_second": 100_000}  # the local server has no limits
RUN_TIMEOUT = 180.0  # seconds (or one per 20 updates) before a run is reported incomplete


# The users' side, in the server's process ------------------------------------------------------

class _User:
    """One user's script and where they are in it."""

    def __init__(self, spec: JSON) -> None:
        self.chat_id: int = spec["chat_id"]
        self.first_name: str = spec["first_name"]
        self.language_code: str = spec["language_code"]
        self.steps: list[JSON] = spec["steps"]  # {"text", "action", "replies": [[text, [ids]]]}
        self.step = -1
        self.waiting = 0  # replies still to come for the current step
        self.injected_at = 0.0


class _Users:
    """Every user of one run: inject each user's next update once the bot answered the last."""

    def __init__(self, server: BenchBotApi, bot: _Bot, specs: list[JSON]) -> None:
        self.server, self.bot = server, bot
        self.users = {spec["chat_id"]: _User(spec) for spec in specs}
        self.left = len(self.users)
        self.done = asyncio.Event()
        self.latencies: list[float] = []
        self.updates = self.replies = self.extra = self.mismatches = self.forged = 0
        self.examples: list[JSON] = []
        self.started = self.finished = self.cpu = 0.0

    def begin(self) -> None:
        self.cpu = time.process_time()
        self.started = time.perf_counter()
        for user in self.users.values():
            self._advance(user)

    def _advance(self, user: _User) -> None:
        while True:
            user.step += 1
            if user.step == len(user.steps):
                self.left -= 1
                if not self.left:
                    self.finished = time.perf_counter()
                    self.cpu = time.process_time() - self.cpu
                    self.done.set()
                return
            step = user.steps[user.step]
            user.waiting, user.injected_at = len(step["replies"]), time.perf_counter()
            self._inject(user, step)
            if user.waiting:
                return

    def _inject(self, user: _User, step: JSON) -> None:
        said = {"first_name": user.first_name, "language_code": user.language_code,
                "token": self.bot.token}
        self.updates += 1
        if step["action"] is None:
            self.server.inject_message(user.chat_id, step["text"], **said)
            return
        message_id, strict = self._button(user.chat_id, step["action"])
        self.server.inject_callback(user.chat_id, message_id, step["action"], strict=strict,
                                    **said)

    def _button(self, chat_id: int, action: str) -> tuple[int, bool]:
        """The latest bot message showing the button; else the latest one, pressed forged."""
        mine = [(n, record) for n, record in self.bot.chats[chat_id].messages.items()
                if record.from_bot and not record.deleted]
        for n, record in reversed(mine):
            if action in _actions(record.reply_markup):
                return n, True
        self.forged += 1
        return mine[-1][0], False

    def on_sent(self, message: JSON) -> None:
        user = self.users.get(message["chat"]["id"])
        if user is None or not 0 <= user.step < len(user.steps) or not user.waiting:
            self.extra += 1
            return
        wanted = user.steps[user.step]["replies"]
        expected = wanted[len(wanted) - user.waiting]
        got = [message.get("text"), _actions(message.get("reply_markup"))]
        if got != expected:
            self.mismatches += 1
            if len(self.examples) < 3:
                self.examples.append({"chat": user.chat_id, "step": user.step,
                                      "expected": expected, "got": got})
        self.replies += 1
        user.waiting -= 1
        if not user.waiting:
            self.latencies.append(time.perf_counter() - user.injected_at)
            self._advance(user)

    def stats(self) -> JSON:
        finished = self.finished or time.perf_counter()
        lat = self.latencies or [0.0]
        return {"done": self.done.is_set(), "chats_done": len(self.users) - self.left,
                "updates": self.updates, "wall": finished - self.started,
                "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                "replies": self.replies, "extra": self.extra, "mismatches": self.mismatches,
                "examples": self.examples, "forged_presses": self.forged,
                "server_cpu": self.cpu if self.done.is_set() else None}


def _actions(markup: JSON | None) -> list[str]:
    return [button.get("callback_data") for row in (markup or {}).get("inline_keyboard", [])
            for button in row]


class _WebhookLines:
    """Telegram's webhook delivery: up to ``connections`` POSTs at once, a chat's updates one
    after another (the next only once the previous one was answered or given up)."""

    def __init__(self, server: BenchBotApi, bot: _Bot, connections: int) -> None:
        self.server, self.bot, self.connections = server, bot, connections
        self.lines: dict[Any, deque[_Queued]] = {}
        self.ready: asyncio.Queue[Any] = asyncio.Queue()

    def add(self, queued: _Queued) -> None:
        update = queued.update
        message = update.get("message") or (update.get("callback_query") or {}).get("message")
        chat = message["chat"]["id"] if message else ("update", queued.update_id)
        line = self.lines.setdefault(chat, deque())
        line.append(queued)
        if len(line) == 1:
            self.ready.put_nowait(chat)

    async def run(self) -> None:
        for queued in self.bot.queue:
            self.add(queued)
        await asyncio.gather(*(self._connection() for _ in range(self.connections)))

    async def _connection(self) -> None:
        server, bot = self.server, self.bot
        while True:
            chat = await self.ready.get()
            line = self.lines[chat]
            queued = line[0]
            for attempt in range(1, len(server._retry_delays) + 2):
                if not bot.webhook_url:
                    return
                status, error = await server._post_update(bot, queued.update)
                server.webhook_deliveries.append(WebhookDelivery(
                    time.monotonic(), bot.id, queued.update_id, bot.webhook_url, attempt,
                    status, error))
                if error is None:
                    break
                bot.last_error_date, bot.last_error_message = int(time.time()), error
                if attempt > len(server._retry_delays):
                    log.warning("webhook gave up update %d: %s", queued.update_id, error)
                    break
                await asyncio.sleep(server._retry_delays[attempt - 1])
            line.popleft()
            for n, waiting in enumerate(bot.queue):  # by identity: it is near the front
                if waiting is queued:
                    del bot.queue[n]
                    break
            server._notify()
            if line:
                self.ready.put_nowait(chat)
            else:
                del self.lines[chat]


class BenchBotApi(LocalBotApi):
    """The shipped local Bot API server, plus the users' side of the bench on its test hooks
    (``bench_load``, ``bench_run``, ``bench_calls``) and Telegram's concurrent webhooks."""

    _TEST_HOOKS = LocalBotApi._TEST_HOOKS | {"bench_ping", "bench_load", "bench_run",
                                             "bench_calls"}

    def __init__(self, tokens: Sequence[str], *, port: int, connections: int) -> None:
        super().__init__(tokens, port=port)
        self.connections = connections
        self._users: dict[str, _Users] = {}
        self._lines: dict[str, _WebhookLines] = {}

    def bench_ping(self) -> int:
        return os.getpid()

    def bench_load(self, token: str, chats: list[JSON]) -> int:
        self._users[token] = _Users(self, self._bot(token), chats)
        return len(chats)

    async def bench_run(self, token: str, timeout: float) -> JSON:  # noqa: ASYNC109 - own deadline
        users = self._users[token]
        users.begin()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(users.done.wait(), timeout)
        return users.stats()

    def bench_calls(self, token: str) -> JSON:
        bot = self._bot(token)
        calls = Counter(call.method for call in self.calls if call.bot_id == bot.id)
        errors = Counter(f"{call.method}: {call.error}" for call in self.calls
                         if call.bot_id == bot.id and call.error)
        posts = sum(1 for d in self.webhook_deliveries if d.bot_id == bot.id)
        return {"calls": dict(calls), "errors": dict(errors), "webhook_posts": posts}

    def _bot_message(self, bot: _Bot, params: Any, method: str, content: JSON, *,
                     source_text: str | None = None) -> JSON:
        message = super()._bot_message(bot, params, method, content, source_text=source_text)
        users = self._users.get(bot.token)
        if users is not None and method == "sendMessage":
            users.on_sent(message)
        return message

    def _deliver(self, bot: _Bot, update: JSON) -> JSON:
        update = super()._deliver(bot, update)
        lines = self._lines.get(bot.token)
        if lines is not None and bot.webhook_url:
            lines.add(bot.queue[-1])
        return update

    async def _run_webhook(self, bot: _Bot) -> None:
        if self.connections == 1:
            await super()._run_webhook(bot)
            return
        lines = self._lines[bot.token] = _WebhookLines(self, bot, self.connections)
        try:
            await lines.run()
        finally:
            self._lines.pop(bot.token, None)


async def serve(port: int, tokens: Sequence[str], connections: int) -> None:
    async with BenchBotApi(tokens, port=port, connections=connections):
        await asyncio.Event().wait()


# The bot's side, in this process ---------------------------------------------------------------

class ApiProcess:
    """``BenchBotApi`` in a process of its own, driven over its ``/_test/`` routes."""

    def __init__(self, tokens: list[str], connections: int) -> None:
        self.tokens, self.connections = tokens, connections
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiProcess:
        tokens = [arg for token in self.tokens for arg in ("--token", token)]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", "--port", str(self.port),
            "--webhook-connections", str(self.connections), *tokens)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                await self.hook("bench_ping")
                return self
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the Bot API server process did not start")
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def hook(self, name: str, **kwargs: Any) -> Any:
        assert self.session is not None
        async with self.session.post(f"{self.url}/_test/{name}", json=kwargs) as response:
            body = await response.json()
        if not body["ok"]:
            raise RuntimeError(f"test hook {name}: {body.get('description')}")
        return body["result"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chat_specs(scripts: list[list[Step]], replies: list[list[list[Any]]]) -> list[JSON]:
    """Each user's updates and the replies the engine alone gave them (what must come back)."""
    specs = []
    for n, (steps, answers) in enumerate(zip(scripts, replies, strict=True)):
        first = steps[0].inbound
        specs.append({
            "chat_id": FIRST_CHAT + n, "first_name": first.display_name,
            "language_code": LANGUAGE_CODES[first.locale_hint or "zh-CN"],
            "steps": [{"text": step.inbound.text, "action": step.inbound.action,
                       "replies": [[r.text, [b.action for b in r.buttons
                                             if len(b.action.encode()) <= CALLBACK_LIMIT]]
                                   for r in got]}
                      for step, got in zip(steps, answers, strict=True)]})
    return specs


@dataclass
class TgRun:
    mode: str
    updates: int
    wall: float
    p50_ms: float
    p99_ms: float
    bot_cpu: float  # seconds of this process's CPU over the timed part
    server_cpu: float | None
    transactions: int  # turn-desk batches (each one transaction)
    calls: dict[str, int]
    errors: dict[str, int]  # Bot API calls refused, by method and description
    webhook_posts: int  # more than updates: some were POSTed again (timed out or refused)
    checks: dict[str, bool]
    settle_ms: float | None  # last reply recorded -> no delivery pending or sending
    examples: list[JSON] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.updates / self.wall

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


async def settle(core: Core, within: float = 10.0) -> float | None:
    """Seconds until no delivery is pending or sending (confirmations are written in batches)."""
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        async with core.uow(read_only=True) as uow:
            waiting = (await uow.conn.execute(select(func.count()).select_from(deliveries).where(
                deliveries.c.status.in_(("pending", "sending"))))).scalar_one()
        if not waiting:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)
    return None


async def stored(core: Core) -> JSON:
    async with core.uow(read_only=True) as uow:
        conn = uow.conn
        logged, distinct_ids = (await conn.execute(
            select(func.count(), func.count(distinct(inbound_log.c.message_id)))
            .where(inbound_log.c.channel == "telegram"))).one()
        chats = (await conn.execute(select(func.count()).select_from(conversations))).scalar_one()
        messages = (await conn.execute(select(func.count()).select_from(chat_messages))
                    ).scalar_one()
        statuses = dict((await conn.execute(select(deliveries.c.status, func.count())
                                            .group_by(deliveries.c.status))).all())
    return {"logged": logged, "distinct": distinct_ids, "chats": chats, "messages": messages,
            "deliveries": statuses}


async def telegram_run(store: Store, kb: KnowledgeBase, catalog: Catalog, api: ApiProcess,
                       token: str, mode: str, specs: list[JSON],
                       profiler: cProfile.Profile | None = None) -> TgRun:
    path = store.fresh()
    core = await store.open(path)
    engine = DialogEngine(core, kb, catalog)
    webhook: JSON = {}
    port = _free_port()
    if mode == "webhook":
        webhook = {"telegram_mode": "webhook", "telegram_webhook_secret": SECRET,
                   "telegram_webhook_url": f"http://127.0.0.1:{port}/telegram/webhook"}
    settings = make_settings(f"sqlite+aiosqlite:///{path}", store.folder / "data",
                             telegram_token=token, telegram_api_url=f"{api.url}/bot",
                             delivery=PACE, **webhook)
    adapter = TelegramAdapter(core, engine, settings, poll_timeout=1)
    runner: web.AppRunner | None = None
    try:
        if mode == "webhook":
            app = web.Application()
            app.router.add_post(adapter.webhook_path, adapter.webhook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        await api.hook("bench_load", token=token, chats=specs)
        await adapter.start()
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        stats = await api.hook("bench_run", token=token,
                               timeout=max(RUN_TIMEOUT, len(specs) * len(specs[0]["steps"]) / 20))
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - cpu
        settled = await settle(core)
        rows = await stored(core)
        transactions = engine.desk.batches
    finally:
        await adapter.stop()
        await engine.close()
        if runner is not None:
            await runner.cleanup()
        await core.close()
        store.discard(path)
    calls = await api.hook("bench_calls", token=token)
    updates = sum(len(spec["steps"]) for spec in specs)
    replies = sum(len(step["replies"]) for spec in specs for step in spec["steps"])
    sent = rows["deliveries"].get("sent", 0)
    checks = {
        "complete": stats["done"] and stats["chats_done"] == len(specs)
        and stats["updates"] == updates,
        "same_replies": stats["replies"] == replies and not stats["mismatches"]
        and not stats["extra"],
        "logged_once": rows["logged"] == rows["distinct"] == updates,
        "conversations": rows["chats"] == len(specs),
        "messages": rows["messages"] == updates + replies,
        "all_delivered": settled is not None and sent == replies == sum(
            rows["deliveries"].values()),
        "send_calls": calls["calls"].get("sendMessage", 0) == replies,
        "no_forged_presses": not stats["forged_presses"],
    }
    return TgRun(mode, stats["updates"], stats["wall"], stats["p50_ms"], stats["p99_ms"], cpu,
                 stats["server_cpu"], transactions, calls["calls"], calls["errors"],
                 calls["webhook_posts"],
                 checks, None if settled is None else settled * 1000, stats["examples"])


# Report ----------------------------------------------------------------------------------------

PROFILE_GROUPS = (  # first match wins: (label, what the function's file or name holds)
    ("waiting (epoll: idle, or aiosqlite's thread)", ("select.epoll",)),
    ("adapter and sender (bots/telegram)", ("bots/telegram/",)),
    ("python-telegram-bot", ("site-packages/telegram/",)),
    ("httpx, httpcore, h11, anyio (PTB's HTTP client)", ("httpx/", "httpcore/", "h11/",
                                                         "anyio/", "sniffio", "certifi")),
    ("aiohttp, yarl, multidict (webhook server)", ("aiohttp/", "yarl/", "multidict/")),
    ("json", ("json/", "_json")),
    ("importlib (httpcore's `import sniffio`, failing: not installed)", ("importlib",
                                                                          "_distutils_hack",
                                                                          "_editable_")),
    ("asyncio scheduling, thread hand-off, sockets", ("asyncio/", "selectors.py", "threading.py",
                                                      "queue", "_socket", "_contextvars",
                                                      "socket.py", "ssl.py")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiosqlite, greenlet", ("aiosqlite/", "greenlet")),
    ("FAQ matcher (knowledge_base, rapidfuzz)", ("knowledge_base/", "rapidfuzz")),
    ("dialog engine, core services", ("bots/", "core/")),
)


def print_profile(mode: str, profiler: cProfile.Profile, run: TgRun) -> None:
    entries: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(own for _cc, _nc, own, _cum, _callers in entries.values())
    print(f"\nprofile of one {mode} run ({run.updates:,} updates in {run.wall:.2f} s under "
          f"cProfile, {run.rate:,.0f}/s; event-loop thread, {total:.2f} s seen)")
    groups = group_own_time(entries, PROFILE_GROUPS)
    print(f"{'own s':>7}{'share':>7}{'us/update':>10}  where")
    for label, own in groups.most_common():
        print(f"{own:>7.2f}{own / total:>6.0%}{own / run.updates * 1e6:>10.0f}  {label}")
    print_top_functions(entries, total)


def report(args: argparse.Namespace, scripts: list[list[Step]], engine_runs: list[Run],
           runs: dict[str, list[TgRun]], same_engine_replies: bool) -> JSON:
    kinds = Counter(step.kind for steps in scripts for step in steps)
    updates = sum(kinds.values())
    print(f"\ntelegram: {args.chats:,} chats at once x {args.turns_per_chat} updates = "
          f"{updates:,} updates ({', '.join(f'{n:,} {k}' for k, n in kinds.most_common())}); "
          f"SQLite; Bot API server in its own process; median of {args.repeat} run(s)")
    engine = statistics.median(r.rate for r in engine_runs)
    print(f"{'path':<30}{'updates/s':>10}{'vs engine':>10}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'bot cpu':>9}{'api cpu':>9}{'upd/txn':>8}  runs (updates/s)")
    print(f"{'engine.handle alone':<30}{engine:>10,.0f}{1:>9.2f}x"
          f"{statistics.median(map(p50_ms, engine_runs)):>8.1f}"
          f"{statistics.median(map(p99_ms, engine_runs)):>8.1f}{'':>26}"
          f"  [{' '.join(f'{r.rate:,.0f}' for r in engine_runs)}]")
    summary: JSON = {"benchmark": "telegram", "chats": args.chats,
                     "turns_per_chat": args.turns_per_chat, "updates": updates,
                     "repeat": args.repeat, "webhook_connections": args.webhook_connections,
                     "engine_updates_per_s": round(engine, 1),
                     "engine_runs": [round(r.rate, 1) for r in engine_runs],
                     "engine_p50_ms": round(statistics.median(map(p50_ms, engine_runs)), 2),
                     "engine_p99_ms": round(statistics.median(map(p99_ms, engine_runs)), 2)}

    def med(mode: str, measure: Any) -> float:
        return statistics.median(measure(r) for r in runs[mode])

    meets = True
    for mode in runs:
        label = (f"telegram webhook ({args.webhook_connections} conn.)" if mode == "webhook"
                 else "telegram polling")
        rate = med(mode, lambda r: r.rate)
        server = [r.server_cpu for r in runs[mode] if r.server_cpu is not None]
        api_cpu = f"{statistics.median(server) / updates * 1e6:>7,.0f}us" if server else "    n/a"
        print(f"{label:<30}{rate:>10,.0f}{rate / engine:>9.2f}x"
              f"{med(mode, lambda r: r.p50_ms):>8.1f}"
              f"{med(mode, lambda r: r.p99_ms):>8.1f}"
              f"{med(mode, lambda r: r.bot_cpu / r.updates * 1e6):>7,.0f}us{api_cpu}"
              f"{med(mode, lambda r: r.updates / max(r.transactions, 1)):>8.1f}"
              f"  [{' '.join(f'{r.rate:,.0f}' for r in runs[mode])}]")
        share = rate / engine
        meets = meets and rate >= TARGET_RATE and share >= TARGET_SHARE
        calls = runs[mode][-1].calls
        summary |= {
            f"{mode}_updates_per_s": round(rate, 1), f"{mode}_vs_engine": round(share, 3),
            f"{mode}_p50_ms": round(med(mode, lambda r: r.p50_ms), 2),
            f"{mode}_p99_ms": round(med(mode, lambda r: r.p99_ms), 2),
            f"{mode}_bot_cpu_us_per_update": round(
                med(mode, lambda r: r.bot_cpu / r.updates * 1e6), 1),
            f"{mode}_server_cpu_us_per_update": round(
                statistics.median(server) / updates * 1e6, 1) if server else None,
            f"{mode}_updates_per_transaction": round(
                med(mode, lambda r: r.updates / max(r.transactions, 1)), 1),
            f"{mode}_send_message": calls.get("sendMessage", 0),
            f"{mode}_calls": calls,
            f"{mode}_refused_calls": sum(sum(r.errors.values()) for r in runs[mode]),
            f"{mode}_posted_again": sum(max(r.webhook_posts - r.updates, 0)
                                        for r in runs[mode]) if mode == "webhook" else None,
            f"{mode}_checks_ok": all(r.ok for r in runs[mode]),
            f"{mode}_runs": [round(r.rate, 1) for r in runs[mode]],
        }
    print("bot cpu / api cpu: CPU time of the bot's process (aiosqlite's thread included) and of "
          "the Bot API server's process (users' side included) per update")
    for mode in runs:
        last = runs[mode][-1]
        calls = ", ".join(f"{n:,} {method}" for method, n in
                          sorted(last.calls.items(), key=lambda kv: -kv[1]))
        posts = f", {last.webhook_posts:,} webhook POSTs" if mode == "webhook" else ""
        errors = sum(sum(r.errors.values()) for r in runs[mode])
        again = sum(r.webhook_posts - r.updates for r in runs[mode] if mode == "webhook")
        settle_ms = [r.settle_ms for r in runs[mode] if r.settle_ms is not None]
        print(f"{mode}: Bot API calls in the last run: {calls}{posts}; confirmations settled "
              f"{statistics.median(settle_ms) if settle_ms else float('nan'):.0f} ms after the "
              "last reply")
        if errors or again:
            seen = Counter[str]()
            for run in runs[mode]:
                seen.update(run.errors)
            print(f"  {mode}, all runs: {again:,} updates POSTed again (the server waits 5 s "
                  f"for an answer), {errors:,} Bot API calls refused: {dict(seen)}")
        for run in runs[mode]:
            if not run.ok:
                failed = ", ".join(name for name, ok in run.checks.items() if not ok)
                print(f"  {mode} run FAILED checks: {failed}; {run.examples}")
    checks_ok = all(r.ok for mode_runs in runs.values() for r in mode_runs)
    print(f"checks on every run (all chats answered with the engine-only replies in order, each "
          f"update logged once, every delivery sent, sendMessage calls = replies): "
          f"{'yes' if checks_ok else 'NO'}; engine-only runs gave the same replies: "
          f"{'yes' if same_engine_replies else 'NO'}")
    for mode in runs:
        rate = summary[f"{mode}_updates_per_s"]
        share = summary[f"{mode}_vs_engine"]
        print(f"{mode}: {rate:,.0f} updates/s "
              f"{'meets' if rate >= TARGET_RATE else 'MISSES'} the target >= "
              f"{TARGET_RATE:,.0f}; {share:.3f} of engine-only "
              f"{'meets' if share >= TARGET_SHARE else 'MISSES'} the target >= {TARGET_SHARE}")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average: {load[0]} {load[1]} {load[2]} ({os.cpu_count()} CPUs)")
    summary |= {"target_updates_per_s": TARGET_RATE, "target_vs_engine": TARGET_SHARE,
                "meets_targets": meets, "checks_ok": checks_ok,
                "same_engine_replies": same_engine_replies, "load_avg": load[:2]}
    return summary


# Entry point -----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chats", type=int, default=250,
                        help="users talking to the bot at once (default %(default)s)")
    parser.add_argument("--turns-per-chat", type=int, default=7,
                        help="updates each user sends, /start first (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default %(default)s)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--webhook-connections", type=int, default=40,
                        help="webhook POSTs at once, a chat's one at a time (Telegram's "
                             "default 40; 1 = the shipped local server's delivery)")
    parser.add_argument("--profile", action="store_true",
                        help="also run each mode once under cProfile")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--token", action="append", dest="tokens", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.chats < 1 or args.turns_per_chat < 2 or args.repeat < 1
            or args.webhook_connections < 1):
        parser.error("need --chats >= 1, --turns-per-chat >= 2, --repeat >= 1, "
                     "--webhook-connections >= 1")
    return args


async def main(args: argparse.Namespace) -> JSON:
    kb, catalog = KnowledgeBase.load(), Catalog.load()
    modes = MODES if args.mode == "both" else (args.mode,)
    tokens = iter([f"{900_001 + n}:BENCH-telegram-{n}"
                   for n in range(len(modes) * (args.repeat + args.profile))])
    engine_runs: list[Run] = []
    runs: dict[str, list[TgRun]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-telegram-") as tmp:
        store = Store(Path(tmp))
        await store.prepare()
        dialog = make_settings(f"sqlite+aiosqlite:///{store.template}", store.folder).dialog
        words = [w.lower() for w in (*dialog.escalation_words, *dialog.complaint_words)]
        scripts = build_scripts(kb, words, args.chats, args.turns_per_chat)
        async with ApiProcess(list(tokens), args.webhook_connections) as api:
            tokens = iter(api.tokens)
            specs: list[JSON] = []
            for run in range(args.repeat):
                result = await timed_run(store, kb, catalog, scripts, product_turn)
                engine_runs.append(result)
                print(f"  engine: run {run + 1}/{args.repeat}: {result.rate:,.0f} updates/s",
                      file=sys.stderr)
                specs = specs or chat_specs(scripts, result.replies)
                for mode in modes:
                    tg = await telegram_run(store, kb, catalog, api, next(tokens), mode, specs)
                    runs[mode].append(tg)
                    print(f"  {mode}: run {run + 1}/{args.repeat}: {tg.rate:,.0f} updates/s, "
                          f"checks {'ok' if tg.ok else 'FAILED'}", file=sys.stderr)
            same = all(r.replies == engine_runs[0].replies for r in engine_runs)
            summary = report(args, scripts, engine_runs, runs, same)
            if args.profile:
                for mode in modes:
                    profiler = cProfile.Profile()
                    tg = await telegram_run(store, kb, catalog, api, next(tokens), mode, specs,
                                            profiler)
                    print_profile(mode, profiler, tg)
    return summary


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(arguments.port, arguments.tokens or [],
                              arguments.webhook_connections))
    else:
        print(json.dumps(asyncio.run(main(arguments))))
