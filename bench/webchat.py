"""Web chat: round trips per second and latency for many WebSocket sessions against ``serve``.

``--sessions`` web-chat sessions (default 500) talk at once to the real product, ``run.py
serve`` started as a process of its own on a fresh SQLite data directory (it migrates the
database and generates its secrets itself, as on a first start), each over its own
``/ws/chat`` socket. A session opens its socket (``Origin`` = the server's own origin, ``?lang=``
zh-CN for half the sessions, en for the other half), waits for ``hello`` and the welcome menu,
then sends ``--turns`` frames one after another, each a round trip: send a frame, then read until
the server's ``idle`` frame (a turn is ``typing``, one ``message`` per reply, ``idle``;
docs/webchat.md). A session's script repeats this pattern of eight:

* an FAQ question (typed text): a knowledge-base question variant of the session's language,
  reworded slightly as ``bench/dialog.py`` does (``question_pools``, ``reword``; a rewording
  holding an escalation or complaint word is drawn again, since it would queue the chat);
* the ``menu:faq`` button; another question;
* a flow, four steps: the ``menu:invest`` button (registration asks for a phone number), a phone
  number of the session's own (a verification code is generated, stored and "sent" by the
  sandbox SMS), a six-digit code (the consent step) and the ``reg:decline`` button (cancelled);
* ``/help`` typed.

The baseline, measured in the same run on the same machine: a bare aiohttp WebSocket echo
server (``--echo-server PORT``, a process of its own: one route that sends ``hello``, then
echoes every text frame as it came), driven by the same client code with the same sessions and
the same frames, ``--echo-messages`` a session (a round trip is one frame and its echo).
Aside, not a path: ``engine.handle`` alone on the same frames as inbounds, in this process with
no socket (``bench/dialog.py``'s ``timed_run``), to tell the engine's share of a round trip
from the web chat's.

Clients run in ``--clients`` processes of their own (default 2; the sessions are dealt out
among them), so the orchestrating process takes no CPU from either side. Every socket is
opened and greeted before the clock starts (the time to open them all is reported apart); the
wall time runs from "go" to the last session's last round trip. Latency is per round trip,
from sending the frame to its ``idle`` (or its echo). CPU is per process over the timed part:
the server's from ``/proc/<pid>/stat`` (every thread, aiosqlite's included), each client's from
``time.process_time``, the machine's from ``/proc/stat``; a process near a whole core, or a
machine near all of its cores, is saturated, and the report says which bound each rate.
``--think`` makes each session pause between turns, as people do: serve's latency under a
load it can carry, rather than its capacity.

The bench sets ``P2P_WEBCHAT__CONNECTIONS_PER_IP`` (every session comes from 127.0.0.1) and
``P2P_WEBCHAT__MESSAGES_PER_SECOND`` (a closed loop sends faster than the 5 a second a session
the product allows) high; everything else is the product's default configuration, or ``--set``.
After each product run (untimed, server stopped) it reads the database: one ``inbound_log`` row
per round trip, one web conversation per session, and the turn desk's batches (each batch
stamps its inbounds with one time). It also checks that every flow ended declined and counts
the server log's errors.

Targets: at least 20% of the echo's round trips per second, and p99 under 100 ms.
``--profile`` adds one product run with the server under cProfile (its event-loop thread only:
aiosqlite's thread, where SQLite runs, is not seen; start-up included) and prints where its
time goes.

    .venv/bin/python bench/webchat.py [--sessions N] [--turns T] [--echo-messages M]
                                      [--repeat K] [--clients C] [--think S] [--deflate]
                                      [--set P2P_NAME=VALUE] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 - the imports below need the project root on sys.path.
import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import pstats
import random
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

# Heavier project imports (the knowledge base, bench.dialog) happen in ``build_scripts`` only:
# client processes and the echo server import this module too.

LOCALES = ("zh-CN", "en")
# A session's script, repeated: (kind, what it sends). Flow steps go through registration.
PATTERN = (("faq", "question"), ("menu", "menu:faq"), ("faq", "question"),
           ("flow", "menu:invest"), ("flow", "phone"), ("flow", "code"),
           ("flow", "reg:decline"), ("help", "/help"))
KINDS = ("faq", "menu", "flow", "help")
TARGET_SHARE = 0.20  # of the echo's round trips per second
TARGET_P99_MS = 100.0
SEED = 11
TURN_TIMEOUT = 60.0  # seconds a round trip may take before the session is given up
BUSY = 0.85  # a process using this share of a core, or a machine this share of its cores, is
# (nearly) saturated
BENCH_ENV = {"P2P_DEMO_DATA": "false", "P2P_WEBCHAT__CONNECTIONS_PER_IP": "100000",
             "P2P_WEBCHAT__MESSAGES_PER_SECOND": "1000000"}


# The script ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    kind: str  # faq | menu | flow | help
    frame: str  # the JSON text sent


@dataclass(frozen=True)
class Session:
    locale: str
    steps: tuple[Step, ...]


def build_scripts(sessions: int, turns: int) -> tuple[list[Session], dict[str, set[str]]]:
    """Every session's frames (fixed seed), and texts to check replies by: the knowledge base's
    answers, the "did you mean" of suggestions and the registration's "declined" text."""
    from bench.dialog import question_picker
    from bots.dialog.i18n import Catalog
    from config.settings import DialogSettings
    from knowledge_base import KnowledgeBase

    kb, catalog, dialog = KnowledgeBase.load(), Catalog.load(), DialogSettings()
    words = [w.lower() for w in (*dialog.escalation_words, *dialog.complaint_words)]
    question = question_picker(kb, words, random.Random(SEED))

    scripts = []
    for n in range(sessions):
        locale = LOCALES[n % 2]
        steps = []
        for i in range(turns):
            kind, what = PATTERN[i % len(PATTERN)]
            if what == "question":
                frame: dict[str, Any] = {"type": "message", "text": question(locale)}
            elif what == "phone":  # a mobile number of this session's own, per pass
                frame = {"type": "message", "text": str(13_000_000_000 + n * 100
                                                        + i // len(PATTERN))}
            elif what == "code":
                frame = {"type": "message", "text": "123456"}
            elif what.startswith("/"):
                frame = {"type": "message", "text": what}
            else:
                frame = {"type": "action", "id": what}
            if frame["type"] == "message":
                frame["id"] = f"c{i}"  # the page sends a client id with every message
            steps.append(Step(kind, json.dumps(frame, ensure_ascii=False)))
        scripts.append(Session(locale, tuple(steps)))
    texts = {"answers": {a for article in kb.articles.values() for a in article.answer.values()},
             "suggested": {catalog.text(locale, "faq_pick") for locale in LOCALES},
             "declined": {catalog.text(locale, "reg_declined") for locale in LOCALES}}
    return scripts, texts


def echo_scripts(scripts: list[Session], messages: int) -> list[Session]:
    """The same sessions sending the same frames to the echo, ``messages`` each (cycled)."""
    return [Session(s.locale, tuple(s.steps[i % len(s.steps)] for i in range(messages)))
            for s in scripts]


# The echo server (``--echo-server PORT``) ------------------------------------------------------

def serve_echo(port: int) -> None:
    """A bare aiohttp WebSocket echo: ``hello`` on connect, then every text frame back."""

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"type": "hello"}')
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/ws/chat", chat)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# Servers under test ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process of the bench's own: started, waited for on ``/healthz``, stopped by
    SIGINT (so ``run_app`` shuts down cleanly and a profiler writes its file)."""

    def __init__(self, argv: list[str], folder: Path, port: int,
                 env: dict[str, str] | None = None) -> None:
        self.argv, self.folder, self.port, self.env = argv, folder, port, env
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup = 0.0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        started = time.monotonic()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.argv, cwd=self.folder, env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.origin}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    break
            if self.process.poll() is not None or time.monotonic() - started > 120:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.argv[1:3]} did not answer /healthz:\n{tail}")
            time.sleep(0.05)
        self.startup = time.monotonic() - started
        return self

    def cpu(self) -> float:
        """CPU seconds the process used so far (user + system, every thread)."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_errors(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if " ERROR " in line or line.startswith("Traceback")]


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (``/proc/stat``, every core)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def product_server(folder: Path, settings: dict[str, str],
                   profile: Path | None = None) -> Server:
    """``run.py serve`` on a fresh data directory, configured by environment only: the bench's
    own ``P2P_*`` variables and ``--set``'s, none inherited."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update(BENCH_ENV, P2P_HTTP_PORT=str(port), P2P_DATA_DIR=str(folder / "data"), **settings)
    runner = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return Server([sys.executable, *runner, str(ROOT / "run.py"), "serve"], folder, port, env)


def echo_server(folder: Path) -> Server:
    port = free_port()
    return Server([sys.executable, str(Path(__file__).resolve()), "--echo-server", str(port)],
                  folder, port)


# Clients (each in a process of its own) --------------------------------------------------------

@dataclass
class Talked:
    """What one client process measured."""

    started: float = 0.0  # time.monotonic(): comparable between processes on one machine
    ended: float = 0.0
    cpu: float = 0.0
    connect: float = 0.0  # seconds to open and greet its sockets
    refused: int = 0  # sockets that could not be opened
    # (kind, a session's first turn?, seconds)
    latencies: list[tuple[str, bool, float]] = field(default_factory=list)
    last_texts: list[list[str | None]] = field(default_factory=list)  # per session, per turn
    errors: Counter[str] = field(default_factory=Counter)  # error frames by code
    broken: int = 0  # sessions given up (socket closed, timeout)


async def greet(http: aiohttp.ClientSession, url: str, origin: str, locale: str,
                greeting: str, deflate: bool) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{url}?lang={locale}", headers={"Origin": origin},
                               compress=15 if deflate else 0, max_msg_size=0)
    while True:
        message = await ws.receive(timeout=TURN_TIMEOUT)
        if message.type != WSMsgType.TEXT:
            raise ConnectionError(f"socket closed while greeting: {message.type!r}")
        if json.loads(message.data).get("type") == greeting:
            return ws


async def talk(ws: aiohttp.ClientWebSocketResponse, steps: Sequence[Step], until: str | None,
               think: float, out: Talked, texts: list[str | None]) -> None:
    """One session's round trips in order; ``until`` is the frame type that ends a turn (None:
    the first frame back). ``texts``: each turn's last message text. With ``think`` (seconds,
    on average) a session pauses before each turn, as a person reads and types."""
    for step in steps:
        if think:
            await asyncio.sleep(random.uniform(0.5, 1.5) * think)
        started = time.perf_counter()
        await ws.send_str(step.frame)
        last = None
        while True:
            try:
                message = await ws.receive(timeout=TURN_TIMEOUT)
            except TimeoutError:
                message = None
            if message is None or message.type != WSMsgType.TEXT:  # timed out or closed
                out.broken += 1
                return
            frame = json.loads(message.data)
            kind = frame.get("type")
            if until is None or kind == until:
                break
            if kind == "message":
                last = frame.get("text")
            elif kind == "error":
                out.errors[frame.get("code")] += 1
                if frame.get("code") != "unavailable":  # only a failed turn still ends in idle
                    break
        out.latencies.append((step.kind, not texts, time.perf_counter() - started))
        texts.append(last)


async def drive(pipe: Connection, url: str, origin: str, sessions: list[Session], greeting: str,
                until: str | None, think: float, deflate: bool) -> None:
    loop = asyncio.get_running_loop()
    out = Talked()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=TURN_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as http:
        started = time.monotonic()
        opened = await asyncio.gather(*(greet(http, url, origin, s.locale, greeting, deflate)
                                        for s in sessions), return_exceptions=True)
        out.connect = time.monotonic() - started
        out.last_texts = [[] for _ in sessions]
        ready = [(ws, s, texts) for ws, s, texts in zip(opened, sessions, out.last_texts,
                                                        strict=True)
                 if isinstance(ws, aiohttp.ClientWebSocketResponse)]
        out.refused = len(sessions) - len(ready)
        pipe.send("ready")
        await loop.run_in_executor(None, pipe.recv)  # "go"
        cpu, out.started = time.process_time(), time.monotonic()
        await asyncio.gather(*(talk(ws, s.steps, until, think, out, texts)
                               for ws, s, texts in ready))
        out.ended, out.cpu = time.monotonic(), time.process_time() - cpu
        pipe.send(out)
        await loop.run_in_executor(None, pipe.recv)  # "close"
        await asyncio.gather(*(ws.close() for ws, _, _ in ready), return_exceptions=True)


def client_process(pipe: Connection, url: str, origin: str, sessions: list[Session],
                   greeting: str, until: str | None, think: float, deflate: bool) -> None:
    asyncio.run(drive(pipe, url, origin, sessions, greeting, until, think, deflate))


# One timed run ---------------------------------------------------------------------------------

@dataclass
class Run:
    round_trips: int
    wall: float
    latencies: list[tuple[str, bool, float]]  # (kind, a session's first turn?, seconds)
    server_cpu: float  # seconds over the timed part
    machine_cpu: float  # busy seconds of every core over the timed part, all processes
    client_cpu: list[float]  # seconds, per client process
    connect: float
    refused: int
    broken: int
    errors: Counter[str]
    last_texts: list[list[str | None]]  # per session (in client order), per turn

    @property
    def rate(self) -> float:
        return self.round_trips / self.wall

    def ms(self, p: float, kind: str | None = None, first: bool | None = None) -> float:
        values = [s for k, f, s in self.latencies if kind in (None, k) and first in (None, f)]
        return percentile(values, p) * 1000 if values else float("nan")

    @property
    def server_share(self) -> float:
        return self.server_cpu / self.wall

    @property
    def client_share(self) -> float:  # the busiest client process
        return max(self.client_cpu) / self.wall

    @property
    def server_us(self) -> float:
        """The server's CPU per round trip, in microseconds: what noise on the machine moves
        least."""
        return self.server_cpu / self.round_trips * 1e6

    @property
    def machine_share(self) -> float:
        return self.machine_cpu / self.wall / (os.cpu_count() or 1)

    @property
    def others_share(self) -> float:
        """Cores kept busy by processes other than the server and the clients."""
        return max(0.0, self.machine_cpu - self.server_cpu - sum(self.client_cpu)) / self.wall


def deal(sessions: list[Session], clients: int) -> list[list[Session]]:
    return [sessions[k::clients] for k in range(clients)]


def measure(server: Server, sessions: list[Session], greeting: str, until: str | None,
            think: float, args: argparse.Namespace) -> Run:
    """Open every session's socket, start them all at once, wait for the last round trip."""
    context = multiprocessing.get_context("spawn")
    workers = []
    url = f"ws://127.0.0.1:{server.port}/ws/chat"
    for share in deal(sessions, args.clients):
        mine, theirs = context.Pipe()
        process = context.Process(target=client_process, daemon=True, args=(
            theirs, url, server.origin, share, greeting, until, think, args.deflate))
        process.start()
        workers.append((process, mine))
    try:
        for process, pipe in workers:
            if not pipe.poll(300) or pipe.recv() != "ready":
                raise RuntimeError(f"client process {process.pid} did not get ready")
        cpu, (busy, _) = server.cpu(), machine_cpu()
        for _, pipe in workers:
            pipe.send("go")
        outs: list[Talked] = [pipe.recv() for _, pipe in workers]
        server_cpu, busy = server.cpu() - cpu, machine_cpu()[0] - busy
        for _, pipe in workers:
            pipe.send("close")
        for process, _ in workers:
            process.join(60)
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.kill()
    latencies = [x for out in outs for x in out.latencies]
    return Run(len(latencies), max(o.ended for o in outs) - min(o.started for o in outs),
               latencies, server_cpu, busy, [o.cpu for o in outs], max(o.connect for o in outs),
               sum(o.refused for o in outs), sum(o.broken for o in outs),
               sum((o.errors for o in outs), Counter()),
               [texts for out in outs for texts in out.last_texts])


def stored_rows(data_dir: Path) -> tuple[int, int, int]:
    """Web inbounds logged, web conversations, and the turn desk's batches, read after the
    server stopped. A batch (``DialogEngine.turn_many``) stamps every inbound it logs with the
    one ``now`` it read, so the distinct stamps count the batches."""
    with contextlib.closing(sqlite3.connect(data_dir / "p2p.db")) as db:
        logged, batches = db.execute("SELECT count(*), count(DISTINCT at) FROM inbound_log "
                                     "WHERE channel = 'web'").fetchone()
        chats = db.execute("SELECT count(*) FROM conversations WHERE channel = 'web'").fetchone()
    return int(logged), int(chats[0]), int(batches)


@dataclass
class ProductRun:
    run: Run
    startup: float
    stored_ok: bool
    log_errors: list[str]
    batches: int

    @property
    def turns_per_batch(self) -> float:
        return self.run.round_trips / self.batches if self.batches else 0.0


def product_run(folder: Path, sessions: list[Session], args: argparse.Namespace,
                profile: Path | None = None) -> ProductRun:
    folder.mkdir()
    server = product_server(folder, args.set, profile).start()
    try:
        # greeted: the welcome menu; a turn ends with "idle"
        run = measure(server, sessions, "message", "idle", args.think, args)
    finally:
        server.stop()
    logged, chats, batches = stored_rows(folder / "data")
    return ProductRun(run, server.startup, (logged, chats) == (run.round_trips, len(sessions)),
                      server.log_errors(), batches)


class EngineAlone:
    """``engine.handle`` on the same frames as inbounds, in this process, no socket at all
    (``bench/dialog.py``'s ``timed_run`` on a fresh copy of a migrated SQLite template)."""

    def __init__(self, folder: Path, sessions: list[Session]) -> None:
        from bench.dialog import Step as DialogStep
        from bench.dialog import Store
        from bots.dialog.types import Inbound

        folder.mkdir()
        self.store = Store(folder)
        self.scripts = []
        for n, session in enumerate(sessions):
            chat, steps = f"web-bench-{n}", []
            for i, step in enumerate(session.steps):
                frame = json.loads(step.frame)
                typed = frame["type"] == "message"
                steps.append(DialogStep(Inbound(  # as bots/webchat/session.py builds it
                    "web", chat, f"{chat}:{frame['id'] if typed else f'a{i}'}",
                    text=frame["text"] if typed else None,
                    action=None if typed else frame["id"], locale_hint=session.locale),
                    step.kind, session.locale))
            self.scripts.append(steps)

    def run(self) -> Any:
        return asyncio.run(self._run())

    async def _run(self) -> Any:
        from bench.dialog import product_turn, timed_run
        from bots.dialog.i18n import Catalog
        from knowledge_base import KnowledgeBase

        if not self.store.template.exists():
            await self.store.prepare()
        return await timed_run(self.store, KnowledgeBase.load(), Catalog.load(), self.scripts,
                               product_turn)


# Report ----------------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(runs: Sequence[Any], measure_: Any) -> float:
    return statistics.median(measure_(r) for r in runs)


def checks(sessions: list[Session], args: argparse.Namespace, run: Run,
           texts: dict[str, set[str]]) -> tuple[Counter[str], int, int]:
    """How the FAQ turns were answered, and how many flows ended declined (of how many)."""
    order = [s for share in deal(sessions, args.clients) for s in share]
    faq: Counter[str] = Counter()
    declined = flows = 0
    for session, got in zip(order, run.last_texts, strict=True):
        for step, text in zip(session.steps, got, strict=False):
            if step.kind == "faq":
                faq["answered" if text in texts["answers"] else
                    "suggested" if text in texts["suggested"] else "missed"] += 1
            elif '"reg:decline"' in step.frame:
                flows += 1
                declined += text in texts["declined"]
    return faq, declined, flows


PROFILE_GROUPS = (  # first match wins: (label, what the function's file or name holds)
    ("waiting (epoll: for clients or aiosqlite's thread)", ("select.epoll",)),
    ("hand-off to aiosqlite's thread (SimpleQueue.put)", ("_queue.SimpleQueue",)),
    ("start-up (imports, migrations, loading)", ("<frozen", "importlib", "alembic/", "marshal",
                                                 "mako/", "yaml/", "builtins.compile",
                                                 "builtins.exec", "pydantic", "tomllib")),
    ("aiohttp (HTTP, WebSocket frames)", ("aiohttp/", "multidict", "yarl/")),
    ("asyncio scheduling, sockets", ("asyncio/", "selectors.py", "_socket", "socket.py",
                                     "_contextvars", "threading.py")),
    ("JSON", ("json/", "json.")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiosqlite, greenlet", ("aiosqlite/", "greenlet")),
    ("FAQ matcher (knowledge_base, rapidfuzz)", ("knowledge_base/", "rapidfuzz")),
    ("phone numbers (phonenumbers)", ("phonenumbers/",)),
    ("web chat (bots/webchat)", ("bots/webchat/",)),
    ("dialog engine, flows, core services", ("bots/", "core/")),
    ("logging", ("logging/",)),
)


def profile_group(filename: str, name: str) -> str:
    where = f"{filename} {name}"
    return next((label for label, marks in PROFILE_GROUPS if any(m in where for m in marks)),
                "other")


def print_profile(path: Path, run: Run) -> None:
    entries: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(own for _cc, _nc, own, _cum, _callers in entries.values())
    turns = run.round_trips
    print(f"\nprofile of one product run under cProfile ({turns:,} round trips in "
          f"{run.wall:.2f} s, {run.rate:,.0f}/s; the server's event-loop thread over its whole "
          f"life, start-up included: {total:.2f} s seen)")
    seen: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _calls, own, _cum, callers) in entries.items():
        label = profile_group(filename, name)
        if label == "other" and filename == "~" and callers:  # a builtin: its callers' time
            for (caller_file, _, caller), (_, _, edge_own, _) in callers.items():
                seen[profile_group(caller_file, caller)] += edge_own
        else:
            seen[label] += own
    print(f"{'own s':>7}{'share':>7}{'us/trip':>9}  where")
    for label, own in seen.most_common():
        print(f"{own:>7.2f}{own / total:>6.0%}{own / turns * 1e6:>9.0f}  {label}")
    from bench.dialog import print_top_functions

    print_top_functions(entries, total, 15)


def report(echo: list[Run], product: list[ProductRun], engine: list[Any],
           sessions: list[Session], args: argparse.Namespace,
           texts: dict[str, set[str]]) -> dict[str, object]:
    runs = [p.run for p in product]
    kinds = Counter(step.kind for s in sessions for step in s.steps)
    trips = sum(kinds.values())
    print(f"\nwebchat: {args.sessions:,} sessions at once x {args.turns} turns = {trips:,} round "
          f"trips ({', '.join(f'{kinds[k]:,} {k}' for k in KINDS if kinds[k])}) against "
          f"run.py serve on SQLite; echo: {args.sessions:,} x {args.echo_messages} = "
          f"{args.sessions * args.echo_messages:,} round trips of the same frames; "
          f"{args.clients} client process(es){', permessage-deflate' if args.deflate else ''};"
          f" {os.cpu_count()} CPUs; median of {args.repeat} run(s)")
    if args.set:
        print(f"serve's settings beside the bench's own: "
              f"{' '.join(f'{k}={v}' for k, v in args.set.items())}")
    echo_rate = median(echo, lambda r: r.rate)
    print(f"{'server':<30}{'trips/s':>9}{'vs echo':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'server CPU':>11}{'us/trip':>8}{'client CPU':>11}{'open s':>7}  runs (trips/s)")
    for label, rs in (("bare aiohttp echo (baseline)", echo), ("run.py serve (web chat)", runs)):
        rate = median(rs, lambda r: r.rate)
        print(f"{label:<30}{rate:>9,.0f}{rate / echo_rate:>8.2f}"
              f"{median(rs, lambda r: r.ms(50)):>8.1f}{median(rs, lambda r: r.ms(99)):>8.1f}"
              f"{median(rs, lambda r: r.server_share):>11.0%}"
              f"{median(rs, lambda r: r.server_us):>8,.0f}"
              f"{median(rs, lambda r: r.client_share):>11.0%}"
              f"{median(rs, lambda r: r.connect):>7.2f}"
              f"  [{' '.join(f'{r.rate:,.0f}' for r in rs)}]")
    engine_rate = median(engine, lambda r: r.rate)
    print(f"{'engine.handle alone (aside)':<30}{engine_rate:>9,.0f}{engine_rate / echo_rate:>8.2f}"
          f"{median(engine, lambda r: percentile(r.latencies, 50) * 1000):>8.1f}"
          f"{median(engine, lambda r: percentile(r.latencies, 99) * 1000):>8.1f}"
          f"{'-':>11}{'-':>8}{'-':>11}{'-':>7}  [{' '.join(f'{r.rate:,.0f}' for r in engine)}]")
    print("product latency by kind (median of runs): " + "; ".join(
        f"{k} p50 {median(runs, lambda r, k=k: r.ms(50, k)):.1f} / "
        f"p99 {median(runs, lambda r, k=k: r.ms(99, k)):.1f} ms" for k in KINDS if kinds[k]))
    print("a session's first turn (its conversation and identity are created): p50 "
          f"{median(runs, lambda r: r.ms(50, first=True)):.1f} / p99 "
          f"{median(runs, lambda r: r.ms(99, first=True)):.1f} ms; later turns: p50 "
          f"{median(runs, lambda r: r.ms(50, first=False)):.1f} / p99 "
          f"{median(runs, lambda r: r.ms(99, first=False)):.1f} ms")
    rate = median(runs, lambda r: r.rate)
    p99 = median(runs, lambda r: r.ms(99))
    if args.think:
        offered = args.sessions / args.think
        print(f"with --think {args.think:g} s serve is offered about {offered:,.0f} trips/s at "
              f"most: its rate is the offered load, not its capacity, and the ratio to the echo "
              f"(a closed loop) says nothing")
    else:
        print(f"closed loop: {args.sessions:,} sessions / {rate:,.0f} trips/s = "
              f"{args.sessions / rate * 1000:,.0f} ms mean latency (Little's law); p99 under "
              f"{TARGET_P99_MS:g} ms needs at least {args.sessions / TARGET_P99_MS * 1000:,.0f} "
              f"trips/s at this concurrency")
    serve_us, echo_us = (median(runs, lambda r: r.server_us),
                         median(echo, lambda r: r.server_us))
    target = TARGET_SHARE * echo_rate
    print(f"server CPU a round trip: serve {serve_us:,.0f} us, echo {echo_us:,.0f} us "
          f"({serve_us / echo_us:,.0f}x); {TARGET_SHARE:.0%} of the echo is {target:,.0f} "
          f"trips/s, at most {1e6 / target:,.0f} us of CPU a trip for one event loop on one core")
    if not args.think:
        trip, turn = 1e6 / rate, 1e6 / engine_rate
        print(f"serve reaches {rate / engine_rate:.0%} of engine.handle alone on the same "
              f"frames: of a round trip's {trip:,.0f} us, {turn:,.0f} us is the engine's turn, "
              f"{trip - turn:,.0f} us the web chat, aiohttp and the socket")
    print(f"turns a batch of the turn desk (one transaction each): serve "
          f"{median(product, lambda p: p.turns_per_batch):.1f} "
          f"[{' '.join(f'{p.turns_per_batch:.1f}' for p in product)}], engine alone "
          f"{median(engine, lambda r: r.turns_per_commit):.1f} "
          f"({median(engine, lambda r: r.statements_per_turn):.1f} statements a turn)")
    faq, declined, flows = checks(sessions, args, runs[-1], texts)
    print(f"FAQ turns (last run): {', '.join(f'{n:,} {k}' for k, n in faq.most_common())}; "
          f"flows ended declined: {declined:,} of {flows:,}")
    errors = sum((r.errors for r in runs + echo), Counter())
    refused = sum(r.refused for r in runs + echo)
    broken = sum(r.broken for r in runs + echo)
    log_errors = [line for p in product for line in p.log_errors]
    stored = all(p.stored_ok for p in product) and all(r.stored_ok for r in engine)
    print(f"sockets refused: {refused}; sessions broken off: {broken}; error frames: "
          f"{dict(errors) or 0}; server log errors: {len(log_errors)}"
          + (f" (first: {log_errors[0][:160]})" if log_errors else ""))
    print(f"stored rows (one inbound_log row per round trip, one conversation per session) as "
          f"expected on every run: {'yes' if stored else 'NO'}; serve start-up to /healthz: "
          f"{median(product, lambda p: p.startup):.2f} s")
    verdicts = {}
    for label, rs in (("echo", echo), ("serve", runs)):
        client, server = (median(rs, lambda r: r.client_share),
                          median(rs, lambda r: r.server_share))
        verdicts[label] = verdict = (
            "client" if client >= BUSY else "server" if server >= BUSY
            else "machine" if median(rs, lambda r: r.machine_share) >= BUSY else "none")
        print(f"{label}: server process {server:.0%} of a core, busiest client process "
              f"{client:.0%}, other processes {median(rs, lambda r: r.others_share):.0%}, the "
              f"machine {median(rs, lambda r: r.machine_share):.0%} of its {os.cpu_count()} "
              "cores: " + {
                  "client": "a client process is saturated: the rate is a lower bound on the "
                            "server's (try more --clients)",
                  "server": "the server process is saturated (one event loop, one core)",
                  "machine": "the machine's cores are all busy (server, clients and others): "
                             "the rate is bounded by the machine, not the server alone",
                  "none": "nothing is saturated (the loop waits on latency)"}[verdict])
    ratio = rate / echo_rate
    print(f"serve / echo = {ratio:.3f}: "
          f"{'meets' if ratio >= TARGET_SHARE else 'MISSES'} the target >= {TARGET_SHARE:g}")
    print(f"p99 = {p99:,.1f} ms: "
          f"{'meets' if p99 < TARGET_P99_MS else 'MISSES'} the target < {TARGET_P99_MS:g} ms")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average: {load}")
    return {
        "benchmark": "webchat", "sessions": args.sessions, "turns": args.turns,
        "echo_messages": args.echo_messages, "round_trips": trips,
        "echo_round_trips": args.sessions * args.echo_messages, "repeat": args.repeat,
        "clients": args.clients, "think_s": args.think, "deflate": args.deflate,
        "settings": args.set,
        "round_trips_per_s": round(rate, 1), "echo_round_trips_per_s": round(echo_rate, 1),
        "ratio": round(ratio, 4), "engine_turns_per_s": round(engine_rate, 1),
        "vs_engine": round(rate / engine_rate, 3),
        "turns_per_batch": round(median(product, lambda p: p.turns_per_batch), 1),
        "engine_turns_per_batch": round(median(engine, lambda r: r.turns_per_commit), 1),
        "p50_ms": round(median(runs, lambda r: r.ms(50)), 2), "p99_ms": round(p99, 2),
        "echo_p50_ms": round(median(echo, lambda r: r.ms(50)), 2),
        "echo_p99_ms": round(median(echo, lambda r: r.ms(99)), 2),
        "p99_ms_by_kind": {k: round(median(runs, lambda r, k=k: r.ms(99, k)), 2)
                           for k in KINDS if kinds[k]},
        "first_turn_p99_ms": round(median(runs, lambda r: r.ms(99, first=True)), 2),
        "later_turns_p99_ms": round(median(runs, lambda r: r.ms(99, first=False)), 2),
        "server_cpu": round(median(runs, lambda r: r.server_share), 3),
        "client_cpu": round(median(runs, lambda r: r.client_share), 3),
        "echo_server_cpu": round(median(echo, lambda r: r.server_share), 3),
        "echo_client_cpu": round(median(echo, lambda r: r.client_share), 3),
        "server_cpu_us": round(median(runs, lambda r: r.server_us), 1),
        "echo_server_cpu_us": round(median(echo, lambda r: r.server_us), 1),
        "bound": verdicts,
        "others_cpu": round(median(runs + echo, lambda r: r.others_share), 3),
        "connect_s": round(median(runs, lambda r: r.connect), 3),
        "startup_s": round(median(product, lambda p: p.startup), 2),
        "faq_answered": faq["answered"], "faq_turns": sum(faq.values()),
        "flows_declined": declined, "flows": flows,
        "refused": refused, "broken": broken, "error_frames": sum(errors.values()),
        "server_log_errors": len(log_errors), "stored_ok": stored,
        "target_ratio": TARGET_SHARE, "target_p99_ms": TARGET_P99_MS,
        "meets_targets": ratio >= TARGET_SHARE and p99 < TARGET_P99_MS,
        "cpus": os.cpu_count(), "load_avg": load,
    }


# Entry point -----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=500,
                        help="web-chat sessions talking at once (default %(default)s)")
    parser.add_argument("--turns", type=int, default=16,
                        help="round trips per session against serve (default %(default)s)")
    parser.add_argument("--echo-messages", type=int, default=40,
                        help="round trips per session against the echo (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default %(default)s)")
    parser.add_argument("--clients", type=int, default=2,
                        help="client processes the sessions are dealt out to "
                             "(default %(default)s)")
    parser.add_argument("--think", type=float, default=0.0, metavar="SECONDS",
                        help="serve only: each session pauses about this long before each turn "
                             "(0.5-1.5x, at random), as people do (default 0: a closed loop)")
    parser.add_argument("--deflate", action="store_true",
                        help="offer permessage-deflate, as browsers do (default: off)")
    parser.add_argument("--profile", action="store_true",
                        help="also run serve once under cProfile and print where its time goes")
    parser.add_argument("--set", action="append", default=[], metavar="P2P_NAME=VALUE",
                        help="a setting for serve (repeatable), e.g. "
                             "P2P_BATCHING__MAX_DELAY_MS=5")
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.sessions < 1 or args.turns < 1 or args.echo_messages < 1 or args.repeat < 1
            or not 1 <= args.clients <= args.sessions or args.think < 0):
        parser.error("need --sessions, --turns, --echo-messages, --repeat >= 1, "
                     "1 <= --clients <= --sessions and --think >= 0")
    if any("=" not in item or not item.startswith("P2P_") for item in args.set):
        parser.error("--set takes P2P_NAME=VALUE")
    args.set = dict(item.split("=", 1) for item in args.set)
    return args


def raise_open_files() -> None:
    """Every session is a socket on both sides: lift the soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(args: argparse.Namespace) -> dict[str, object]:
    raise_open_files()
    sessions, texts = build_scripts(args.sessions, args.turns)
    echoes = echo_scripts(sessions, args.echo_messages)
    echo_runs: list[Run] = []
    product_runs: list[ProductRun] = []
    engine_runs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="p2p-bench-webchat-") as tmp:
        folder = Path(tmp)
        engine = EngineAlone(folder / "engine", sessions)
        (folder / "echo").mkdir()
        echo = echo_server(folder / "echo").start()
        try:
            for n in range(args.repeat):
                echo_runs.append(measure(echo, echoes, "hello", None, 0.0, args))
                print(f"  echo: run {n + 1}/{args.repeat}: {echo_runs[-1].rate:,.0f} trips/s",
                      file=sys.stderr)
                product_runs.append(product_run(folder / f"serve-{n + 1}", sessions, args))
                print(f"  serve: run {n + 1}/{args.repeat}: {product_runs[-1].run.rate:,.0f} "
                      f"trips/s", file=sys.stderr)
                engine_runs.append(engine.run())
                print(f"  engine alone: run {n + 1}/{args.repeat}: {engine_runs[-1].rate:,.0f} "
                      f"turns/s", file=sys.stderr)
        finally:
            echo.stop()
        summary = report(echo_runs, product_runs, engine_runs, sessions, args, texts)
        if args.profile:
            profile = folder / "serve.prof"
            profiled = product_run(folder / "serve-profiled", sessions, args, profile)
            print_profile(profile, profiled.run)
    return summary


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.echo_server is not None:
        serve_echo(arguments.echo_server)
    else:
        print(json.dumps(main(arguments)))
