"""Notices end to end: outbox -> ``Dispatcher.run_once`` -> deliveries -> ``TelegramSender`` ->
``sendMessage`` on the local Bot API server, and whether the sender keeps Telegram's pace.

Two parts, each run ``--runs`` times (median and every run printed):

* **(a) dispatcher overhead**: ``--notices`` notices (default 5,000; the issue's figure is
  50,000, see the README for why not by default) to ``--chats`` chats (default 5,000), notice
  ``k`` to chat ``k % chats``, with the pace switched off (``delivery.per_second=100000``,
  ``per_chat_interval_ms=0``), timed from the first dispatcher pass to every notice ``sent`` in
  the outbox (the sender's confirmations written). Baseline in the same run: a bare aiohttp
  client posting the same ``sendMessage`` requests (same chats, texts, keyboards, form-encoded)
  to a server of the same kind, 8 in flight (the sender's limit), so product / baseline is the
  share of the server's pace the product keeps. Target: at least 2,000 notices/s.
* **(b) real limits**: ``--seconds`` (default 20) at the default pace (30 messages a second in
  all, one a second a chat) with ``--backlog`` notices (default 3 per chat) queued for
  ``--limit-chats`` chats (default 2,000), more than can go in that time: the rate achieved in
  the ``--seconds`` from the first message the server received (target: at least 95% of 30/s),
  and, from the server's receive times (``ApiCall.at``, ``time.monotonic()``), per-chat
  violations (two messages to a chat less than 1.0 s apart) and overall violations (31 messages
  within 1.0 s), both allowing ``--tolerance-ms`` (default 50) of timer jitter; both must be 0.
  The overall count is also taken on the sender's side (when it began each request, noted by
  wrapping the sender instance's ``_send_message``), to tell the sender's bursts from jitter on
  the way to the server.
  With that many chats each gets at most one message in the window (the sender serves them in
  turn), so each run then also sends to ``--few-chats`` chats (default 10) for
  ``--few-seconds`` (default 4), each with more than it can take, where the per-chat limit is
  what holds the pace back (about 10 messages/s).

The dispatcher runs as ``bots.server.ChatChannels._dispatch_forever`` does (on SQLite the
``notice-dispatcher`` lease, then ``run_once`` in a unit of work, commit, poke the sender; a poll
of ``notify.poll_seconds`` when a pass handled less than ``notify.batch``), reimplemented here.
The sender is the one ``TelegramAdapter`` builds (``.start()``: PTB set up, commands set, the
getUpdates poller and the sender started, all untimed). Notices use the ``payment_received``
template, which is urgent: the default quiet hours (21:00-08:00 Asia/Shanghai) never defer it, so
the real ``SystemClock`` is used at any time of day. Each notice has its own loan number, so
every text is unique and a message sent twice shows up.

Users are a bench-only bulk insert (``users`` and ``channel_identities`` rows: channel
``telegram``, the chat id, reachable, half ``zh-CN`` and half ``en``), into a template database
seeded once; the notices go in with ``core.notify.enqueue_many`` (part (a): into a second
template; part (b): at the start of each run, untimed). Every measurement gets a fresh copy of
its template and a Bot API server process of its own (the shipped one,
``python -m bots.telegram.local_api``, read through its ``/_test/calls_to`` hook), so the
server's CPU is not counted against the product's.

    .venv/bin/python bench/notify.py [--notices N] [--chats C] [--seconds S] [--limit-chats L]
                                     [--backlog B] [--few-chats F] [--few-seconds T]
                                     [--tolerance-ms J] [--runs K] [--part a|b|both]
                                     [--database postgresql+asyncpg://...] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and ``bench/telegram.py`` would
# then shadow python-telegram-bot's ``telegram`` package: the project root takes its place.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 - the imports below need the project root on sys.path.
import argparse
import asyncio
import bisect
import contextlib
import cProfile
import hashlib
import html
import itertools
import json
import os
import pstats
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.dialog import group_own_time, print_top_functions
from bench.flash_sale import remove_sqlite_file
from bench.telegram import ApiProcess as _HookedProcess
from bots.dialog.dispatcher import Dispatcher
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.notices import render_notice
from bots.telegram.adapter import SEND_CONNECTIONS, TelegramAdapter
from bots.telegram.local_api import JSON
from bots.telegram.sender import TelegramSender, keyboard
from config.settings import Settings
from core import leases, notify
from core.adapters.db import create_engine
from core.adapters.tables import channel_identities, deliveries, outbox, users
from core.bootstrap import Core, bootstrap
from knowledge_base import KnowledgeBase
from tests.support import make_settings

TEMPLATE = "payment_received"  # urgent (config/notices.toml): quiet hours never defer it
LOCALES = ("zh-CN", "en")
FIRST_CHAT = 6_000_001  # Telegram user (= private chat) id of the first user
PACE_OFF = {"per_chat_interval_ms": 0, "per_second": 100_000}
TARGET_RATE = 2_000.0  # notices per second, part (a)
TARGET_SHARE = 0.95  # of the overall limit, part (b)
CHUNK = 5_000  # rows per statement when seeding


# The Bot API server, in a process of its own ---------------------------------------------------

class ApiProcess(_HookedProcess):
    """The shipped local Bot API server (``python -m bots.telegram.local_api``) in a process of
    its own, for one bot token; read through its ``/_test/`` hooks, its CPU time from
    ``/proc/<pid>/stat``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.telegram.local_api", "--port", str(self.port),
            "--token", self.token, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                await self.hook("calls_to", method="none")
                return self
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the Bot API server process did not start")
            await asyncio.sleep(0.05)

    def cpu(self) -> float:
        """Seconds of CPU the server process has used (user and system)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def calls(self) -> list[JSON]:
        """The server's call log: ``ApiCall``s as dicts (``at`` is ``time.monotonic()`` when
        the request was read, the same clock in every process on Linux)."""
        return list(await self.hook("calls_to"))


def summarize(calls: list[JSON]) -> JSON:
    """Calls by method, calls refused, and the messages accepted: how many, how many
    different, and a digest of them (chat, text, keyboard) in any order."""
    keys = sorted(json.dumps([str(c["chat_id"]), c["params"].get("text"),
                              c["params"].get("reply_markup")], sort_keys=True,
                             ensure_ascii=False)
                  for c in calls if c["method"].lower() == "sendmessage" and c["error"] is None)
    return {"calls": dict(Counter(c["method"] for c in calls)),
            "refused": sum(1 for c in calls if c["error"]), "sends": len(keys),
            "distinct": len(set(keys)),
            "digest": hashlib.sha256("\n".join(keys).encode()).hexdigest()}


def receipts(calls: list[JSON]) -> list[list[Any]]:
    """Each accepted ``sendMessage``: [at, chat id, text]."""
    return [[c["at"], str(c["chat_id"]), c["params"].get("text")] for c in calls
            if c["method"].lower() == "sendmessage" and c["error"] is None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_tokens = iter(range(910_001, 10**9))


def new_token() -> str:
    return f"{next(_tokens)}:BENCH-notify"


# Databases -------------------------------------------------------------------------------------

class Store:
    """Seeded templates and a fresh copy of one for every run: a file copy on SQLite (in a
    temporary folder), ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (databases named
    ``bench_notify_*``, each dropped at the end; nothing else on the server is touched)."""

    def __init__(self, folder: Path, admin_url: str | None) -> None:
        self.folder, self.admin_url = folder, admin_url
        self.templates: dict[str, str] = {}
        self.created: list[str] = []
        self.copies = 0

    @property
    def database(self) -> str:
        return "postgresql" if self.admin_url else "sqlite"

    def settings(self, url: str, **overrides: object) -> Settings:
        return make_settings(url, self.folder / "data", **overrides)

    async def _new(self, name: str, template: str | None = None) -> str:
        if self.admin_url is None:
            path = self.folder / f"{name}.db"
            if template is not None:
                shutil.copyfile(make_url(template).database or "", path)  # closed: checkpointed
            return f"sqlite+aiosqlite:///{path}"
        database = f"bench_notify_{uuid.uuid4().hex[:12]}"
        source = f' TEMPLATE "{make_url(template).database}"' if template else ""
        await self._admin(f'CREATE DATABASE "{database}"{source}')
        url = make_url(self.admin_url).set(database=database).render_as_string(
            hide_password=False)
        self.created.append(url)
        return url

    async def seed(self, name: str, seeder: Callable[[Core], Awaitable[None]],
                   base: str | None = None) -> None:
        """Template ``name``: a copy of template ``base`` (or an empty migrated database) with
        what ``seeder`` adds."""
        url = await self._new(f"template-{name}", self.templates[base] if base else None)
        core = await bootstrap(self.settings(url), migrate=True)
        try:
            await seeder(core)
        finally:
            await core.close()  # on SQLite: the WAL is checkpointed into the file
        self.templates[name] = url

    async def fresh(self, name: str) -> str:
        self.copies += 1
        return await self._new(f"run-{self.copies}", self.templates[name])

    async def discard(self, url: str) -> None:
        if self.admin_url is None:
            remove_sqlite_file(make_url(url).database or "")
            return
        self.created.remove(url)
        await self._admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    async def close(self) -> None:
        for url in list(self.created):
            await self.discard(url)

    async def _admin(self, statement: str) -> None:
        assert self.admin_url is not None
        engine = create_engine(self.admin_url)
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(statement))
        finally:
            await engine.dispose()


def seed_users(count: int) -> Callable[[Core], Awaitable[None]]:
    """``count`` users, each with a reachable Telegram chat (bench-only bulk insert)."""

    async def seeder(core: Core) -> None:
        now = core.clock.now()
        async with core.uow() as uow:
            for start in range(0, count, CHUNK):
                await uow.conn.execute(users.insert(), [
                    {"created_at": now, "status": "active", "locale": LOCALES[n % 2],
                     "first_channel": "telegram"} for n in range(start, min(count, start + CHUNK))])
            ids = (await uow.conn.execute(select(users.c.id).order_by(users.c.id))).scalars().all()
            rows = [{"channel": "telegram", "external_id": str(FIRST_CHAT + n), "user_id": user,
                     "display_name": f"Bench user {n}", "locale": LOCALES[n % 2],
                     "first_seen_at": now, "last_seen_at": now, "unreachable": False}
                    for n, user in enumerate(ids)]
            for start in range(0, len(rows), CHUNK):
                await uow.conn.execute(channel_identities.insert(), rows[start:start + CHUNK])
            await uow.commit()

    return seeder


def notice_params(k: int) -> dict[str, Any]:
    """Notice ``k``'s params: its own loan number, so every text is different."""
    return {"loan_id": 100_000 + k, "amount": f"{1_000 + k % 9_000}.00", "repaid": False}


async def enqueue(core: Core, count: int, chats: int, tag: str) -> None:
    """``count`` notices through ``core.notify.enqueue_many``, notice ``k`` to user ``k % chats``
    (the users in id order, as seeded), so consecutive notices go to different chats."""
    async with core.uow() as uow:
        ids = (await uow.conn.execute(select(users.c.id).order_by(users.c.id).limit(chats))
               ).scalars().all()
    for start in range(0, count, CHUNK):
        async with core.uow() as uow:
            await notify.enqueue_many(uow, [
                {"user_id": ids[k % chats], "template": TEMPLATE, "params": notice_params(k),
                 "dedupe_key": f"bench-{tag}:{k}"}
                for k in range(start, min(count, start + CHUNK))])
            await uow.commit()


def seed_notices(count: int, chats: int) -> Callable[[Core], Awaitable[None]]:
    async def seeder(core: Core) -> None:
        await enqueue(core, count, chats, "a")

    return seeder


async def outbox_statuses(core: Core) -> dict[str, int]:
    async with core.uow(read_only=True) as uow:
        return dict((await uow.conn.execute(select(outbox.c.status, func.count())
                                            .group_by(outbox.c.status))).all())


async def delivery_statuses(core: Core) -> dict[str, int]:
    async with core.uow(read_only=True) as uow:
        return dict((await uow.conn.execute(select(deliveries.c.status, func.count())
                                            .group_by(deliveries.c.status))).all())


# The product: dispatcher loop and sender -------------------------------------------------------

@dataclass
class Passes:
    count: int = 0
    seconds: float = 0.0  # wall time inside passes (run_once and its commit)


async def dispatch_forever(core: Core, dispatcher: Dispatcher, sender: TelegramSender,
                           passes: Passes) -> None:
    """``bots.server.ChatChannels._dispatch_forever``, without its logging: an error ends the
    run instead of being retried."""
    settings = core.settings.notify
    holder = leases.holder_id()
    ttl = timedelta(seconds=settings.lease_seconds)
    held = False
    while True:
        handled = 0
        if core.settings.is_sqlite:
            async with core.uow() as uow:
                held = await leases.acquire(uow, "notice-dispatcher", holder, ttl)
                await uow.commit()
        if held or not core.settings.is_sqlite:
            started = time.perf_counter()
            async with core.uow() as uow:
                done = await dispatcher.run_once(uow)
                await uow.commit()
            passes.count += 1
            passes.seconds += time.perf_counter() - started
            handled = done.total
            if done.handed:
                sender.poke()
        if handled < settings.batch:
            await asyncio.sleep(settings.poll_seconds)


@contextlib.asynccontextmanager
async def product(store: Store, url: str, api: ApiProcess, kb: KnowledgeBase, catalog: Catalog,
                  **overrides: object
                  ) -> AsyncIterator[tuple[Core, DialogEngine, TelegramAdapter]]:
    """The core, the engine and the Telegram adapter (not started yet) on ``url``, against
    ``api``; stopped and closed on the way out."""
    settings = store.settings(url, telegram_token=api.token,
                              telegram_api_url=f"{api.url}/bot", **overrides)
    core = await bootstrap(settings, migrate=True)
    engine = DialogEngine(core, kb, catalog)
    adapter = TelegramAdapter(core, engine, settings)
    try:
        yield core, engine, adapter
    finally:
        await adapter.stop()
        await engine.close()
        await core.close()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# Part (a): dispatcher overhead -----------------------------------------------------------------

@dataclass
class Measure:
    """One timed pass of ``count`` messages: through the product or the bare client."""

    count: int
    wall: float
    cpu: float  # seconds of this process's CPU (aiosqlite's thread included)
    loop_cpu: float  # seconds of the event-loop thread's CPU (the rest: aiosqlite's thread)
    api_cpu: float  # seconds of the server process's CPU
    summary: JSON  # what the server received (``summarize``)
    complete: bool = True
    passes: Passes = field(default_factory=Passes)
    outbox: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.wall

    @property
    def ok(self) -> bool:
        s = self.summary
        return (self.complete and s["sends"] == s["distinct"] == self.count
                and not s["refused"] and (not self.outbox or self.outbox == {"sent": self.count}))


async def product_run(store: Store, kb: KnowledgeBase, catalog: Catalog, count: int,
                      profiler: cProfile.Profile | None = None) -> Measure:
    """Outbox to ``sent``: the dispatcher loop and the adapter's sender, pace off."""
    url = await store.fresh("a")
    passes = Passes()
    try:
        async with ApiProcess(new_token()) as api:
            async with product(store, url, api, kb, catalog, delivery=PACE_OFF) as (
                    core, engine, adapter):
                await adapter.start()
                dispatcher = Dispatcher(engine)
                api_cpu = api.cpu()
                cpu, loop_cpu, started = time.process_time(), time.thread_time(), \
                    time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                loop = asyncio.create_task(
                    dispatch_forever(core, dispatcher, adapter.sender, passes))
                try:
                    complete = await all_sent(core, adapter.sender, count, loop,
                                              within=max(120.0, count / 200))
                finally:
                    if profiler is not None:
                        profiler.disable()
                    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                    loop_cpu = time.thread_time() - loop_cpu
                    api_cpu = api.cpu() - api_cpu
                    await stop(loop)
                statuses = await outbox_statuses(core)
                sent = await delivery_statuses(core)
            summary = summarize(await api.calls())
    finally:
        await store.discard(url)
    return Measure(count, wall, cpu, loop_cpu, api_cpu, summary, complete, passes, statuses,
                   sent)


async def all_sent(core: Core, sender: TelegramSender, count: int, loop: asyncio.Task[None],
                   within: float) -> bool:
    """Wait until the sender has sent ``count`` messages and every notice is ``sent`` in the
    outbox (its confirmations are written every 50 ms); False if ``within`` seconds pass."""
    deadline = time.perf_counter() + within
    while sender.sent_count < count:
        if loop.done():
            loop.result()  # the dispatcher failed: raise its error
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
    while True:
        async with core.uow(read_only=True) as uow:
            sent = (await uow.conn.execute(select(func.count()).select_from(outbox)
                                           .where(outbox.c.status == "sent"))).scalar_one()
        if sent >= count:
            return True
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.005)


def baseline_requests(catalog: Catalog, count: int, chats: int) -> list[dict[str, Any]]:
    """The ``sendMessage`` form fields the product posts for the seeded notices (the same
    rendering, escaping and keyboard), built before the clock starts."""
    requests = []
    for k in range(count):
        n = k % chats
        reply = render_notice(catalog, TEMPLATE, notice_params(k), LOCALES[n % 2])
        fields = {"chat_id": str(FIRST_CHAT + n), "text": html.escape(reply.text, quote=False),
                  "parse_mode": "HTML"}
        markup = keyboard([{"id": b.action, "label": b.label} for b in reply.buttons])
        if markup is not None:
            fields["reply_markup"] = markup
        requests.append(fields)
    return requests


async def baseline_run(requests: list[dict[str, Any]]) -> Measure:
    """A bare aiohttp client: the same requests, ``SEND_CONNECTIONS`` in flight."""
    async with ApiProcess(new_token()) as api:
        url = f"{api.url}/bot{api.token}/sendMessage"
        left = iter(requests)
        refused = 0

        async def client(session: aiohttp.ClientSession) -> None:
            nonlocal refused
            for fields in left:
                async with session.post(url, json=fields) as response:
                    body = await response.json(content_type=None)
                refused += not body.get("ok")

        connector = aiohttp.TCPConnector(limit=SEND_CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            api_cpu = api.cpu()
            cpu, loop_cpu, started = time.process_time(), time.thread_time(), time.perf_counter()
            await asyncio.gather(*(client(session) for _ in range(SEND_CONNECTIONS)))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            loop_cpu = time.thread_time() - loop_cpu
            api_cpu = api.cpu() - api_cpu
        summary = summarize(await api.calls())
    return Measure(len(requests), wall, cpu, loop_cpu, api_cpu, summary, complete=not refused)


# Part (b): real limits -------------------------------------------------------------------------

@dataclass
class Pace:
    """One run at the default pace, from the server's receive times."""

    seconds: float
    sends: list[list[Any]]  # [at, chat, text], as the server received them
    per_second: float
    interval: float  # seconds between two messages to one chat
    tolerance: float
    backlog: int
    posted: list[float] = field(default_factory=list)  # when the sender began each sendMessage
    outbox: dict[str, int] = field(default_factory=dict)

    @property
    def times(self) -> list[float]:
        return sorted(at for at, _chat, _text in self.sends)

    @property
    def first(self) -> float:
        return self.times[0] if self.sends else 0.0

    @property
    def in_window(self) -> int:
        return sum(1 for at in self.times if at < self.first + self.seconds)

    @property
    def covered(self) -> bool:
        """The run went on for the whole window (its last message came after the window)."""
        return bool(self.sends) and self.times[-1] >= self.first + self.seconds - 1

    @property
    def rate(self) -> float:
        return self.in_window / self.seconds

    @property
    def share(self) -> float:
        return self.rate / self.per_second

    @property
    def steady(self) -> float:
        """The window's rate without its first second (the sender's first burst)."""
        return sum(1 for at in self.times if self.first + 1 <= at < self.first + self.seconds
                   ) / (self.seconds - 1) if self.seconds > 1 else self.rate

    @property
    def repeated(self) -> int:
        """Chats that got more than one message."""
        return sum(1 for ats in self.by_chat().values() if len(ats) > 1)

    def by_chat(self) -> dict[str, list[float]]:
        chats: dict[str, list[float]] = {}
        for at, chat, _text in self.sends:
            chats.setdefault(chat, []).append(at)
        return {chat: sorted(ats) for chat, ats in chats.items()}

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive messages to the same chat."""
        return [b - a for ats in self.by_chat().values() for a, b in itertools.pairwise(ats)]

    @property
    def chat_violations(self) -> int:
        return sum(1 for gap in self.gaps if gap < self.interval - self.tolerance)

    def crowded(self, times: list[float]) -> list[float]:
        """Of sorted ``times``, those with ``per_second`` others in the second (less the
        tolerance) before them: each one over the overall limit."""
        limit, within = int(self.per_second), 1.0 - self.tolerance
        return [times[i] for i in range(limit, len(times)) if times[i] - times[i - limit] < within]

    @property
    def overall_violations(self) -> int:
        return len(self.crowded(self.times))

    @property
    def sender_violations(self) -> int:
        """The same count on the sender's side: when it began each request."""
        return len(self.crowded(sorted(self.posted)))

    @property
    def last_violation(self) -> float | None:
        """Seconds from the first message to the last overall violation (None: none)."""
        late = self.crowded(self.times)
        return late[-1] - self.first if late else None

    @property
    def busiest(self) -> int:
        """The most messages in any 1-second window (exact, no tolerance)."""
        times = self.times
        return max((bisect.bisect_left(times, at + 1.0) - i for i, at in enumerate(times)),
                   default=0)

    @property
    def resent(self) -> int:
        """Messages whose text (unique per notice) the chat had already received."""
        return len(self.sends) - len({(chat, text) for _at, chat, text in self.sends})


async def pace_run(store: Store, kb: KnowledgeBase, catalog: Catalog, chats: int, backlog: int,
                   seconds: float, tolerance: float) -> Pace:
    url = await store.fresh("users")
    try:
        async with ApiProcess(new_token()) as api:
            async with product(store, url, api, kb, catalog) as (core, engine, adapter):
                await enqueue(core, backlog, chats, "b")
                delivery = core.settings.delivery
                posted = record_posts(adapter.sender)
                await adapter.start()
                loop = asyncio.create_task(
                    dispatch_forever(core, Dispatcher(engine), adapter.sender, Passes()))
                try:
                    deadline = time.monotonic() + 60
                    while not adapter.sender.sent_count and time.monotonic() < deadline:
                        if loop.done():
                            loop.result()
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(seconds + 0.5)  # the server saw the first one before
                finally:
                    await stop(loop)
                statuses = await outbox_statuses(core)
            sends = receipts(await api.calls())
    finally:
        await store.discard(url)
    return Pace(seconds, sends, delivery.per_second, delivery.per_chat_interval_ms / 1000,
                tolerance, backlog, posted, statuses)


def record_posts(sender: TelegramSender) -> list[float]:
    """Note when the sender begins each ``sendMessage`` (after its token bucket and its limit
    of requests in flight), by wrapping the instance's method; the product is not changed."""
    posted: list[float] = []
    post = sender._send_message

    async def noted(chat_id: str, text: str, markup: Any) -> str:
        posted.append(time.monotonic())
        return await post(chat_id, text, markup)

    sender._send_message = noted  # type: ignore[method-assign]
    return posted


# Report ----------------------------------------------------------------------------------------

PROFILE_GROUPS = (  # first match wins: (label, what the function's file or name holds)
    ("dispatcher, notice rendering (bots/dialog)", ("bots/dialog/",)),
    ("sender (bots/telegram/sender.py)", ("bots/telegram/sender",)),
    ("python-telegram-bot (keyboard objects, to_json)", ("site-packages/telegram/",)),
    ("core.delivery, notifications, leases", ("core/",)),
    ("aiohttp client, yarl, multidict", ("aiohttp/", "yarl/", "multidict/")),
    ("form encoding (urllib.parse)", ("urllib/parse",)),
    ("json", ("json/", "_json")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiosqlite, asyncpg, greenlet (hand-off to the driver)", ("aiosqlite/", "asyncpg/",
                                                                "greenlet")),
    ("sockets (send, recv)", ("_socket",)),
    ("asyncio scheduling, epoll, threads", ("asyncio/", "select.epoll", "selectors.py",
                                            "threading.py", "queue", "_contextvars")),
    ("builtins (isinstance, len, dict and str methods, ...)", ("<built-in", "<method")),
)


def print_profile(profiler: cProfile.Profile, run: Measure) -> None:
    entries: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(own for _cc, _nc, own, _cum, _callers in entries.values())
    print(f"\nprofile of one part (a) run ({run.count:,} notices in {run.wall:.2f} s under "
          f"cProfile, {run.rate:,.0f}/s): CPU time of the event-loop thread "
          f"(time.thread_time), {total:.2f} s seen; aiosqlite's thread is not profiled "
          f"({(run.cpu - run.loop_cpu) / run.count * 1e6:,.0f} us/notice in this run)")
    print(f"{'own s':>7}{'share':>7}{'us/notice':>10}  where")
    for label, own in group_own_time(entries, PROFILE_GROUPS).most_common():
        print(f"{own:>7.2f}{own / total:>6.0%}{own / run.count * 1e6:>10.0f}  {label}")
    print_top_functions(entries, total, count=20)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def runs_of(values: Sequence[float], fmt: str = ",.0f") -> str:
    return "[" + " ".join(format(v, fmt) for v in values) + "]"


def report_dispatch(args: argparse.Namespace, database: str, product_runs: list[Measure],
                    baseline_runs: list[Measure]) -> JSON:
    base = statistics.median(r.rate for r in baseline_runs)
    rate = statistics.median(r.rate for r in product_runs)
    print(f"\n(a) dispatcher overhead: {args.notices:,} notices to "
          f"{min(args.chats, args.notices):,} chats, pace "
          f"off (per_second {PACE_OFF['per_second']:,}, per_chat_interval_ms 0), "
          f"{SEND_CONNECTIONS} sends in flight; {database}; median of {len(product_runs)} "
          "run(s)")
    print(f"{'path':<32}{'msgs/s':>8}{'vs base':>9}{'cpu/msg':>10}{'loop':>9}{'db':>9}"
          f"{'api cpu':>10}  runs (msgs/s)")
    rows = (("bare aiohttp client (baseline)", baseline_runs, base),
            ("product: outbox -> sent", product_runs, rate))
    for label, runs, median in rows:
        cpu = statistics.median(r.cpu / r.count * 1e6 for r in runs)
        loop = statistics.median(r.loop_cpu / r.count * 1e6 for r in runs)
        db = statistics.median(max(0.0, r.cpu - r.loop_cpu) / r.count * 1e6 for r in runs)
        api = statistics.median(r.api_cpu / r.count * 1e6 for r in runs)
        print(f"{label:<32}{median:>8,.0f}{median / base:>8.2f}x{cpu:>8,.0f}us{loop:>7,.0f}us"
              f"{db:>7,.0f}us{api:>8,.0f}us  {runs_of([r.rate for r in runs])}")
    passes = statistics.median(r.passes.count for r in product_runs)
    in_passes = statistics.median(r.passes.seconds / r.wall for r in product_runs)
    print(f"cpu/msg: this process's CPU per message, of it the event-loop thread's (loop) and "
          f"the other threads' (db: aiosqlite's thread; asyncpg has none); api cpu: the server "
          f"process's. Dispatcher passes per "
          f"run: {passes:,.0f}, "
          f"{in_passes:.0%} of the wall time inside them (run_once and commit)")
    checks = all(r.ok for r in product_runs) and all(r.ok for r in baseline_runs)
    same = len({r.summary["digest"] for r in (*product_runs, *baseline_runs)}) == 1
    for r in (*product_runs, *baseline_runs):
        if not r.ok:
            print(f"  run FAILED checks: complete={r.complete}, server={r.summary}, "
                  f"outbox={r.outbox}, deliveries={r.deliveries}")
    print(f"checks (every notice sent once, outbox all `sent`, no call refused): "
          f"{'yes' if checks else 'NO'}; product and baseline posted the same messages: "
          f"{'yes' if same else 'NO'}")
    print(f"product: {rate:,.0f} notices/s {'meets' if rate >= TARGET_RATE else 'MISSES'} the "
          f"target >= {TARGET_RATE:,.0f}; {rate / base:.2f} of the bare client")
    return {
        "notices": args.notices, "chats": min(args.chats, args.notices),
        "in_flight": SEND_CONNECTIONS,
        "dispatch_per_s": round(rate, 1),
        "dispatch_runs": [round(r.rate, 1) for r in product_runs],
        "baseline_per_s": round(base, 1),
        "baseline_runs": [round(r.rate, 1) for r in baseline_runs],
        "dispatch_vs_baseline": round(rate / base, 3),
        "dispatch_cpu_us": round(statistics.median(r.cpu / r.count * 1e6
                                                   for r in product_runs), 1),
        "dispatch_loop_cpu_us": round(statistics.median(r.loop_cpu / r.count * 1e6
                                                        for r in product_runs), 1),
        "dispatch_api_cpu_us": round(statistics.median(r.api_cpu / r.count * 1e6
                                                       for r in product_runs), 1),
        "baseline_cpu_us": round(statistics.median(r.cpu / r.count * 1e6
                                                   for r in baseline_runs), 1),
        "baseline_api_cpu_us": round(statistics.median(r.api_cpu / r.count * 1e6
                                                       for r in baseline_runs), 1),
        "dispatch_passes": passes, "dispatch_target_per_s": TARGET_RATE,
        "dispatch_meets_target": rate >= TARGET_RATE, "dispatch_checks_ok": checks,
        "same_messages": same,
    }


def report_pace(args: argparse.Namespace, database: str, broad: list[Pace],
                few: list[Pace]) -> JSON:
    first = broad[0]
    rate = statistics.median(r.rate for r in broad)
    share = rate / first.per_second
    everything = [*broad, *few]
    chat_violations = sum(r.chat_violations for r in everything)
    overall = sum(r.overall_violations for r in everything)
    tol_ms = args.tolerance_ms
    print(f"\n(b) real limits: the default pace ({first.per_second:g} messages/s in all, one "
          f"per {first.interval:g} s a chat); {args.seconds:g} s to {args.limit_chats:,} chats "
          f"with {first.backlog:,} notices queued"
          + (f", then {args.few_seconds:g} s to {args.few_chats} chats with "
             f"{few[0].backlog:,} queued (where the per-chat limit binds)" if few else "")
          + f"; {database}; median of {len(broad)} run(s)")
    print(f"{'run':<14}{'msgs':>6}{'rate/s':>8}{'share':>8}{'after 1s':>9}{'busiest 1s':>11}"
          f"{'overall':>8}{'last at s':>10}{'sender':>7}{'per-chat':>9}{'chats 2+':>9}"
          f"{'min gap s':>10}{'resent':>7}")
    for label, runs in ((f"{args.limit_chats} chats", broad), (f"{args.few_chats} chats", few)):
        for n, r in enumerate(runs, 1):
            gaps = r.gaps
            print(f"{f'{label} #{n}':<14}{r.in_window:>6}{r.rate:>8.2f}{r.share:>7.1%}"
                  f"{r.steady:>9.2f}{r.busiest:>11}{r.overall_violations:>8}"
                  f"{_seconds(r.last_violation):>10}{r.sender_violations:>7}"
                  f"{r.chat_violations:>9}{r.repeated:>9}"
                  f"{min(gaps) if gaps else float('nan'):>10.3f}{r.resent:>7}")
    print(f"msgs: messages the server received in the window from the first one on; share: of "
          f"{first.per_second:g}/s; after 1s: the rate without the window's first second; "
          f"overall: messages with {int(first.per_second)} others in the "
          f"{1 - tol_ms / 1000:.2f} s before them (last at: when the last one was received, "
          f"from the first message; sender: the same count from when the sender began each "
          f"request, in its own process); "
          f"per-chat: messages less than "
          f"{first.interval - tol_ms / 1000:.2f} s after the chat's previous one ({tol_ms:g} ms "
          "allowed for timer jitter, both; every message of the run counted, not only the "
          "window's); busiest 1s: the most messages in any 1-second window (exact); chats 2+: "
          "chats that got more than one message; resent: a notice's text received again")
    covered = all(r.covered for r in everything)
    if not covered:
        print("  WARNING: a run ended before its window did (fewer messages than the window "
              "should hold)")
    print(f"rate: {rate:.2f}/s = {share:.1%} of {first.per_second:g}/s "
          f"{'meets' if share >= TARGET_SHARE else 'MISSES'} the target >= {TARGET_SHARE:.0%}; "
          f"violations over all runs: per-chat {chat_violations}, overall {overall} "
          f"({'meets' if not chat_violations and not overall else 'MISSES'} the target 0)")
    summary: JSON = {
        "limits_seconds": args.seconds, "limits_chats": args.limit_chats,
        "limits_backlog": first.backlog, "limits_per_second": first.per_second,
        "limits_rate_per_s": round(rate, 2),
        "limits_runs": [round(r.rate, 2) for r in broad],
        "limits_share": round(share, 4), "limits_share_target": TARGET_SHARE,
        "limits_after_1s_per_s": round(statistics.median(r.steady for r in broad), 2),
        "limits_busiest_1s": max(r.busiest for r in broad),
        "limits_busiest_runs": [r.busiest for r in broad],
        "limits_overall_violations": overall,
        "limits_overall_runs": [r.overall_violations for r in broad],
        "limits_overall_violations_sender": sum(r.sender_violations for r in everything),
        "limits_last_violation_s": max((round(r.last_violation, 3) for r in everything
                                        if r.last_violation is not None), default=None),
        "limits_chat_violations": chat_violations,
        "limits_chats_with_2plus": max(r.repeated for r in broad),
        "limits_resent": sum(r.resent for r in everything), "limits_tolerance_ms": tol_ms,
        "limits_window_covered": covered,
        "limits_meets_target": share >= TARGET_SHARE and not chat_violations and not overall,
    }
    if few:
        gaps = [gap for r in few for gap in r.gaps]
        summary |= {"few_chats": args.few_chats, "few_seconds": args.few_seconds,
                    "few_rate_per_s": round(statistics.median(r.rate for r in few), 2),
                    "few_runs": [round(r.rate, 2) for r in few],
                    "few_chat_violations": sum(r.chat_violations for r in few),
                    "few_gaps": len(gaps),
                    "few_min_gap_s": round(min(gaps), 3) if gaps else None,
                    "few_median_gap_s": round(statistics.median(gaps), 3) if gaps else None}
    return summary


# Entry point -----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--notices", type=int, default=5_000,
                        help="part (a): notices dispatched per run (default %(default)s)")
    parser.add_argument("--chats", type=int, default=5_000,
                        help="part (a): chats they go to (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="part (b): seconds measured per run (default %(default)s)")
    parser.add_argument("--limit-chats", type=int, default=2_000,
                        help="part (b): chats (default %(default)s)")
    parser.add_argument("--backlog", type=int, default=None,
                        help="part (b): notices queued (default 3 per chat)")
    parser.add_argument("--few-chats", type=int, default=10,
                        help="part (b), then: chats few enough for the per-chat limit to bind "
                             "(default %(default)s; 0 skips this)")
    parser.add_argument("--few-seconds", type=float, default=4.0,
                        help="part (b), then: seconds measured to the few chats (default "
                             "%(default)s)")
    parser.add_argument("--tolerance-ms", type=float, default=50.0,
                        help="part (b): timer jitter allowed (default %(default)s)")
    parser.add_argument("--runs", "--repeat", type=int, default=3, dest="runs",
                        help="runs per part; the median is reported (default %(default)s)")
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--database", default=None,
                        help="a postgresql+asyncpg:// URL to run on PostgreSQL instead of "
                             "SQLite (fresh bench_notify_* databases are created there and "
                             "dropped)")
    parser.add_argument("--profile", action="store_true",
                        help="also run part (a) once under cProfile and print the top costs")
    args = parser.parse_args(argv)
    if args.backlog is None:
        args.backlog = 3 * args.limit_chats
    if min(args.notices, args.chats, args.limit_chats, args.backlog, args.runs) < 1 \
            or args.few_chats < 0 or args.seconds <= 0 or args.few_seconds <= 0:
        parser.error("counts and seconds must be positive")
    if args.database and not args.database.startswith("postgresql"):
        parser.error("--database takes a postgresql+asyncpg:// URL (SQLite is the default)")
    return args


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> JSON:
    kb, catalog = KnowledgeBase.load(), Catalog.load()
    parts = ("a", "b") if args.part == "both" else (args.part,)
    summary: JSON = {"benchmark": "notify", "runs": args.runs, "template": TEMPLATE,
                     "clock": "SystemClock (the template is urgent: no quiet hours)"}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-notify-") as tmp:
        store = Store(Path(tmp), args.database)
        summary["database"] = store.database
        try:
            started = time.perf_counter()
            await store.seed("users", seed_users(max(args.chats if "a" in parts else 0,
                                                     args.limit_chats if "b" in parts else 0)))
            if "a" in parts:
                await store.seed("a", seed_notices(args.notices, args.chats), base="users")
            log(f"seeded in {time.perf_counter() - started:.1f} s")
            if "a" in parts:
                requests = baseline_requests(catalog, args.notices, args.chats)
                products: list[Measure] = []
                baselines: list[Measure] = []
                for run in range(args.runs):
                    baselines.append(await baseline_run(requests))
                    products.append(await product_run(store, kb, catalog, args.notices))
                    log(f"(a) run {run + 1}/{args.runs}: baseline {baselines[-1].rate:,.0f}/s, "
                        f"product {products[-1].rate:,.0f}/s")
                summary |= report_dispatch(args, store.database, products, baselines)
            if "b" in parts:
                broad: list[Pace] = []
                few: list[Pace] = []
                tolerance = args.tolerance_ms / 1000
                for run in range(args.runs):
                    broad.append(await pace_run(store, kb, catalog, args.limit_chats,
                                                args.backlog, args.seconds, tolerance))
                    if args.few_chats:  # each chat more than it can take in the time
                        few.append(await pace_run(
                            store, kb, catalog, args.few_chats,
                            args.few_chats * (int(args.few_seconds) + 3), args.few_seconds,
                            tolerance))
                    log(f"(b) run {run + 1}/{args.runs}: {broad[-1].rate:.2f}/s"
                        + (f", few chats {few[-1].rate:.2f}/s" if few else ""))
                summary |= report_pace(args, store.database, broad, few)
            if args.profile and "a" in parts:
                profiler = cProfile.Profile(time.thread_time)  # CPU, not GIL waits
                print_profile(profiler, await product_run(store, kb, catalog, args.notices,
                                                          profiler))
        finally:
            await store.close()
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average: {load[0]} {load[1]} {load[2]} ({os.cpu_count()} CPUs)")
    summary["load_avg"] = load[:2]
    return summary


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args()))))
