"""Dialog turns: chat turns per second through the dialog engine, persisted on SQLite.

``--chats`` conversations (default 500) talk at once (``asyncio.gather`` of one task per chat),
each sending ``--turns-per-chat`` turns (default 7) in order, each turn awaiting the previous
one's replies: ``/start`` (every fifth with a campaign payload), then an FAQ question, a language
switch (``/language``), a question, a menu button (``menu:faq``), a question, ``/help``, and
more questions after that. Half the chats start in Chinese, half in English; after the switch
they ask in the other language. Questions are the knowledge base's own question variants,
reworded slightly (a polite prefix, a dropped character or two swapped words, other
punctuation); a rewording holding a word that hands the chat to a human
(``dialog.escalation_words``, ``complaint_words``) is drawn again, since a queued chat no longer
reaches the FAQ. The script is built once (fixed seed) and sent on both paths:

* ``product``: ``engine.handle(inbound)``, which runs the turn through ``core.batcher`` (the group
  committer: concurrent turns share one transaction and one commit).
* ``naive`` (the baseline): one unit of work and one commit per turn,
  ``async with core.uow() as uow: await engine.turn(uow, inbound); await uow.commit()``. It
  manages under 200 turns/s, so by default it talks with the first 250 chats of the same script
  (``--naive-chats``); the ratio compares turns per second.

Each run works on a fresh copy of one migrated SQLite template (``core.bootstrap`` with
``tests.support.make_settings``, ``migrate=True``, the real ``SystemClock``). There is no
bench-only seeding: every conversation, channel identity and analytics event is created by the
turns themselves. Latency is per turn, from the call to its replies. Statements are counted
with SQLAlchemy's ``before_cursor_execute`` on ``core.engine.sync_engine`` (``BEGIN IMMEDIATE``
included, commits counted apart), and the time from there to ``after_cursor_execute`` is summed
("in SQL": aiosqlite's thread hand-offs and SQLite's own work, not building the statement).
Beside the paths, untimed against them: ``kb.match`` alone on the same questions in the same
locales, one after another (how much of a turn is matching), and one small indexed SELECT
repeated in an open unit of work (the floor of one statement through SQLAlchemy's asyncio layer
and aiosqlite). After each run it checks what was stored (one inbound row per turn, one
conversation per chat, one message row per turn and per reply) and that both paths gave the
same replies.

Targets: ``product`` at least 3,000 turns/s and at least 10x ``naive``. ``--profile`` adds one
product run under cProfile (the event-loop thread only: aiosqlite's own thread, where SQLite
runs, is not seen) and prints where its time goes.

    .venv/bin/python bench/dialog.py [--chats N] [--naive-chats M] [--turns-per-chat T]
                                     [--repeat K] [--profile]
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
import cProfile
import json
import pstats
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select

from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound, Reply
from core.adapters.tables import chat_messages, conversations, inbound_log
from core.bootstrap import Core, bootstrap
from knowledge_base import KnowledgeBase
from knowledge_base.matcher import has_cjk
from tests.support import make_settings

CHANNEL = "telegram"
LOCALES = ("zh-CN", "en")
# After /start, each chat follows this (then starts it again): seven turns hold every kind.
PATTERN = ("faq", "language", "faq", "menu", "faq", "help", "faq", "faq", "faq")
TARGET_RATE = 3_000.0  # product turns per second
TARGET_RATIO = 10.0  # product / naive turns per second
SEED = 11
NAIVE_CHATS = 250  # the naive path manages under 200 turns/s here: keep a run under 2 minutes
TYPED = {"language": "/language", "help": "/help"}


# The script ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    inbound: Inbound
    kind: str  # start | faq | language | menu | help
    locale: str  # the chat's language when it sends this


def reword(question: str, rng: random.Random) -> str:
    """A slight rewording: what a user types is rarely the variant word for word."""
    core = question.rstrip("？?。！!. ")
    if has_cjk(core):
        chars = list(core)
        if len(chars) > 6 and rng.random() < 0.5:
            del chars[rng.randrange(1, len(chars) - 1)]
        return (rng.choice(("请问", "你好，", "想问一下，", "")) + "".join(chars)
                + rng.choice(("？", "呢？", "啊", "")))
    words = core.split()
    if len(words) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return (rng.choice(("", "hi, ", "quick question: ", "hello ")) + " ".join(words)
            + rng.choice(("?", "", " please?")))


def question_pools(kb: KnowledgeBase) -> dict[str, list[str]]:
    return {locale: [q for a in kb.articles.values() for q in a.questions.get(locale, ())]
            for locale in LOCALES}


def question_picker(kb: KnowledgeBase, words: Sequence[str],
                    rng: random.Random) -> Callable[[str], str]:
    """Draws reworded knowledge-base questions of a locale; a rewording holding a word that
    hands the chat to a human is drawn again (other benches use it too)."""
    pools = question_pools(kb)

    def question(locale: str) -> str:
        while True:  # reworded text must not ask for a human (``sue`` is in ``issue``)
            text = reword(rng.choice(pools[locale]), rng)
            if not any(w in text.lower() for w in words):
                return text

    return question


def build_scripts(kb: KnowledgeBase, words: Sequence[str], chats: int,
                  turns: int) -> list[list[Step]]:
    rng = random.Random(SEED)
    question = question_picker(kb, words, rng)

    scripts = []
    for n in range(chats):
        hint = locale = LOCALES[n % 2]  # the channel's language hint never changes
        payload = "spring_ads" if n % 5 == 0 else None
        sent = [("start", "/start spring_ads" if payload else "/start", None)]
        for i in range(1, turns):
            kind = PATTERN[(i - 1) % len(PATTERN)]
            sent.append((kind, question(locale) if kind == "faq" else TYPED.get(kind),
                         "menu:faq" if kind == "menu" else None))
        steps = []
        for i, (kind, text, action) in enumerate(sent):
            steps.append(Step(Inbound(
                CHANNEL, f"chat-{n}", f"chat-{n}:{i}", text=text, action=action,
                display_name=f"User {n}", locale_hint=hint,
                payload=payload if kind == "start" else None), kind, locale))
            if kind == "language":
                locale = "en" if locale == "zh-CN" else "zh-CN"
        scripts.append(steps)
    return scripts


# One timed run ---------------------------------------------------------------------------------

@dataclass
class Run:
    turns: int
    wall: float
    latencies: list[float]
    statements: int
    commits: int
    in_statements: float  # seconds between before_ and after_cursor_execute, summed
    replies: list[list[list[Reply]]]  # per chat, per turn
    stored_ok: bool

    @property
    def rate(self) -> float:
        return self.turns / self.wall

    @property
    def statements_per_turn(self) -> float:
        return self.statements / self.turns

    @property
    def statement_share(self) -> float:
        return self.in_statements / self.wall

    @property
    def turns_per_commit(self) -> float:
        return self.turns / self.commits if self.commits else 0.0


@dataclass
class Figures:
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, name: str, run: Run) -> None:
        self.runs.setdefault(name, []).append(run)

    def median(self, name: str, measure: Callable[[Run], float]) -> float:
        return statistics.median(measure(r) for r in self.runs[name])


Turner = Callable[[DialogEngine, Inbound], Awaitable[list[Reply]]]


async def product_turn(engine: DialogEngine, inbound: Inbound) -> list[Reply]:
    return await engine.handle(inbound)


async def naive_turn(engine: DialogEngine, inbound: Inbound) -> list[Reply]:
    async with engine.core.uow() as uow:
        replies = await engine.turn(uow, inbound)
        await uow.commit()
    return replies


class Counters:
    """Statements, the time spent in them and commits on the core's engine (SQLAlchemy events).

    The time runs from ``before_cursor_execute`` to ``after_cursor_execute``: the hand-off to
    aiosqlite's thread, SQLite's work and the way back. Statements never overlap here (one writer
    at a time on SQLite), so the sum is a share of the wall time."""

    def __init__(self, core: Core) -> None:
        self.statements = self.commits = 0
        self.in_statements = 0.0
        self._started = 0.0
        sync_engine = core.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine, "commit", self._commit)

    def _before(self, *_args: Any) -> None:
        self.statements += 1
        self._started = time.perf_counter()

    def _after(self, *_args: Any) -> None:
        self.in_statements += time.perf_counter() - self._started

    def _commit(self, *_args: Any) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.statements = self.commits = 0
        self.in_statements = 0.0


async def converse(engine: DialogEngine, scripts: list[list[Step]], turn: Turner,
                   counters: Counters, profiler: cProfile.Profile | None = None) -> Run:
    """Every chat at once, each chat's turns in order; then check what was stored (untimed)."""
    latencies: list[float] = []
    replies: list[list[list[Reply]]] = [[] for _ in scripts]

    async def chat(n: int, steps: list[Step]) -> None:
        for step in steps:
            started = time.perf_counter()
            got = await turn(engine, step.inbound)
            latencies.append(time.perf_counter() - started)
            replies[n].append(got)

    counters.reset()
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    await asyncio.gather(*(chat(n, steps) for n, steps in enumerate(scripts)))
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    statements, commits, in_statements = (counters.statements, counters.commits,
                                           counters.in_statements)
    turns = sum(len(s) for s in scripts)
    said = sum(len(r) for chat_replies in replies for r in chat_replies)
    async with engine.core.uow(read_only=True) as uow:
        count = await uow.conn.execute(select(
            select(func.count()).select_from(inbound_log).scalar_subquery(),
            select(func.count()).select_from(conversations).scalar_subquery(),
            select(func.count()).select_from(chat_messages).scalar_subquery()))
        logged, chats, messages = count.one()
    stored_ok = (logged, chats, messages) == (turns, len(scripts), turns + said)
    return Run(turns, wall, latencies, statements, commits, in_statements, replies, stored_ok)


class Store:
    """One migrated SQLite template, and a fresh copy of it for every run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = folder / "template.db"
        self.copies = 0

    async def open(self, path: Path) -> Core:
        return await bootstrap(make_settings(f"sqlite+aiosqlite:///{path}", self.folder / "data"),
                               migrate=True)

    async def prepare(self) -> None:
        core = await self.open(self.template)
        await core.close()  # closed: the WAL is checkpointed into the file

    def fresh(self) -> Path:
        self.copies += 1
        path = self.folder / f"run-{self.copies}.db"
        shutil.copyfile(self.template, path)
        return path

    @staticmethod
    def discard(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def timed_run(store: Store, kb: KnowledgeBase, catalog: Catalog,
                    scripts: list[list[Step]], turn: Turner,
                    profiler: cProfile.Profile | None = None) -> Run:
    path = store.fresh()
    core = await store.open(path)
    engine = DialogEngine(core, kb, catalog)
    try:
        return await converse(engine, scripts, turn, Counters(core), profiler)
    finally:
        await engine.close()
        await core.close()
        store.discard(path)


async def round_trip(store: Store, count: int = 1_000) -> float:
    """Microseconds for one small indexed SELECT in an open unit of work: the floor of a
    statement through SQLAlchemy's asyncio layer and aiosqlite."""
    path = store.fresh()
    core = await store.open(path)
    try:
        statement = select(conversations.c.id).where(conversations.c.chat_id == "nobody")
        async with core.uow() as uow:
            for _ in range(count // 10):  # warm the compiled cache
                await uow.conn.execute(statement)
            started = time.perf_counter()
            for _ in range(count):
                (await uow.conn.execute(statement)).first()
            return (time.perf_counter() - started) / count * 1e6
    finally:
        await core.close()
        store.discard(path)


def match_run(kb: KnowledgeBase, questions: list[tuple[str, str]]) -> tuple[float, Counter[str]]:
    """``kb.match`` alone on the FAQ questions: matches per second, and how each came out."""
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    found = [kb.match(text, locale) for text, locale in questions]
    elapsed = time.perf_counter() - started
    for match in found:
        outcomes["none" if match is None else "confident" if match.score >= 70 else "weak"] += 1
    return len(questions) / elapsed, outcomes


# Report ----------------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def p50_ms(run: Run) -> float:
    return percentile(run.latencies, 50) * 1000


def p99_ms(run: Run) -> float:
    return percentile(run.latencies, 99) * 1000


def faq_outcomes(scripts: list[list[Step]], run: Run, answers: set[str]) -> Counter[str]:
    """How the engine answered the FAQ turns: an article, top-3 suggestions, or a miss."""
    outcomes: Counter[str] = Counter()
    for steps, chat_replies in zip(scripts, run.replies, strict=True):
        for step, replies in zip(steps, chat_replies, strict=True):
            if step.kind != "faq":
                continue
            reply = replies[-1]
            if reply.text in answers:
                outcomes["answered"] += 1
            elif any(b.action.startswith("faq:") for b in reply.buttons):
                outcomes["suggested"] += 1
            else:
                outcomes["missed"] += 1
    return outcomes


PROFILE_GROUPS = (  # first match wins: (label, what the function's file or name holds)
    ("waiting for aiosqlite's thread (epoll)", ("select.epoll",)),
    ("asyncio scheduling, thread hand-off", ("asyncio/", "selectors.py", "threading.py",
                                             "queue", "_socket", "_contextvars")),
    ("SQLAlchemy (build, compile, execute, rows)", ("sqlalchemy/",)),
    ("aiosqlite, greenlet", ("aiosqlite/", "greenlet")),
    ("FAQ matcher (knowledge_base, rapidfuzz)", ("knowledge_base/", "rapidfuzz")),
    ("dialog engine, core services", ("bots/", "core/")),
)


def print_profile(profiler: cProfile.Profile, wall: float, turns: int) -> None:
    entries: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(own for _cc, _nc, own, _cum, _callers in entries.values())
    print(f"\nprofile of one product run ({turns:,} turns in {wall:.2f} s under cProfile; "
          f"event-loop thread, {total:.2f} s seen)")
    groups = group_own_time(entries, PROFILE_GROUPS)
    print(f"{'own s':>7}{'share':>7}{'us/turn':>9}  where")
    for label, own in groups.most_common():
        print(f"{own:>7.2f}{own / total:>6.0%}{own / turns * 1e6:>9.0f}  {label}")
    print_top_functions(entries, total)


def group_own_time(entries: dict[Any, Any],
                   groups: Sequence[tuple[str, tuple[str, ...]]]) -> Counter[str]:
    """Own time of ``pstats`` entries summed by the first group whose marks the function's
    file or name holds ("other" if none)."""
    seen: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _calls, own, _cum, _callers) in entries.items():
        where = f"{filename} {name}"
        label = next((label for label, marks in groups
                      if any(m in where for m in marks)), "other")
        seen[label] += own
    return seen


def print_top_functions(entries: dict[Any, Any], total: float, count: int = 12) -> None:
    """The ``count`` functions with the most own time in ``pstats`` entries (other benches
    print their profiles with it too)."""
    print("top functions by own time:")
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)
    for (filename, line, name), (_cc, calls, own, _cum, _callers) in ranked[:count]:
        where = filename.replace(str(ROOT) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        where = f"{where}:{line}({name})" if line else name
        print(f"{own:>7.2f}{own / total:>6.0%}{calls:>10,}  {where}")


@dataclass
class Aside:
    """Figures beside the two paths: the matcher alone and one statement's round trip."""

    match_rates: list[float] = field(default_factory=list)
    match_outcomes: Counter[str] = field(default_factory=Counter)
    round_trips: list[float] = field(default_factory=list)


def report(figures: Figures, args: argparse.Namespace, scripts: list[list[Step]],
           aside: Aside, answers: set[str]) -> dict[str, object]:
    kinds = Counter(step.kind for steps in scripts for step in steps)
    turns = sum(kinds.values())
    print(f"\ndialog: {args.chats:,} chats at once x {args.turns_per_chat} turns = {turns:,} turns "
          f"({', '.join(f'{n:,} {k}' for k, n in kinds.most_common())}); SQLite; "
          f"median of {args.repeat} run(s)")
    if args.naive_chats != args.chats:
        print(f"note: the naive path talks with the first {args.naive_chats:,} chats "
              f"({args.naive_chats * args.turns_per_chat:,} turns, same script); the ratio "
              "compares turns/s")
    naive = figures.median("naive", lambda r: r.rate)
    product = figures.median("product", lambda r: r.rate)
    print(f"{'path':<36}{'turns/s':>9}{'vs naive':>9}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'stmts/turn':>11}{'in SQL':>7}{'turns/commit':>13}  runs (turns/s)")
    labels = {"product": "engine.handle (group commit)", "naive": "uow+commit per turn (naive)"}
    for name, label in labels.items():
        runs = figures.runs[name]
        rate = figures.median(name, lambda r: r.rate)
        print(f"{label:<36}{rate:>9,.0f}{rate / naive:>8.1f}x"
              f"{figures.median(name, p50_ms):>8.1f}{figures.median(name, p99_ms):>8.1f}"
              f"{figures.median(name, lambda r: r.statements_per_turn):>11.1f}"
              f"{figures.median(name, lambda r: r.statement_share):>7.0%}"
              f"{figures.median(name, lambda r: r.turns_per_commit):>13.1f}"
              f"  [{' '.join(f'{r.rate:,.0f}' for r in runs)}]")
    match_rate = statistics.median(aside.match_rates)
    print(f"{'kb.match alone (FAQ questions)':<36}{match_rate:>9,.0f}  matches/s"
          f"{'':>29}  [{' '.join(f'{r:,.0f}' for r in aside.match_rates)}]")

    faq = kinds["faq"]
    product_runs, naive_runs = figures.runs["product"], figures.runs["naive"]
    outcomes = faq_outcomes(scripts, product_runs[-1], answers)
    alone = ", ".join(f"{n:,} {k}" for k, n in aside.match_outcomes.most_common())
    print(f"FAQ turns: {', '.join(f'{n:,} {k}' for k, n in outcomes.most_common())} "
          f"(kb.match alone: {alone})")
    per_turn = 1e6 / product
    matching = faq / turns * 1e6 / match_rate
    statements = figures.median("product", lambda r: r.statements_per_turn)
    in_sql = figures.median("product", lambda r: r.statement_share) * per_turn
    trip = statistics.median(aside.round_trips)
    print(f"where a product turn's {per_turn:,.0f} us go (wall time / turns): "
          f"{in_sql:,.0f} us ({in_sql / per_turn:.0%}) inside {statements:.1f} statements "
          f"({in_sql / statements:,.0f} us each), {matching:,.0f} us ({matching / per_turn:.0%}) "
          f"matching ({1000 / match_rate:.2f} ms per FAQ question, {faq:,} of {turns:,} turns), "
          f"{per_turn - in_sql - matching:,.0f} us ({1 - (in_sql + matching) / per_turn:.0%}) "
          f"the rest (engine, SQLAlchemy, batching, commits)")
    print(f"one indexed SELECT alone through SQLAlchemy + aiosqlite: {trip:,.0f} us, so "
          f"{statements:.1f} statements one after another cost at least {trip * statements:,.0f}"
          f" us a turn: at most {1e6 / (trip * statements):,.0f} turns/s while a turn's "
          f"statements run one by one")
    stored = all(r.stored_ok for r in product_runs + naive_runs)
    same = all(r.replies[:args.naive_chats] == naive_runs[0].replies
               for r in product_runs + naive_runs)
    print(f"stored rows (inbound log, conversations, messages) as expected on every run: "
          f"{'yes' if stored else 'NO'}; product and naive gave the same replies: "
          f"{'yes' if same else 'NO'}")
    ratio = product / naive
    print(f"product turns/s = {product:,.0f}: "
          f"{'meets' if product >= TARGET_RATE else 'MISSES'} the target >= {TARGET_RATE:,.0f}")
    print(f"product / naive = {ratio:.1f}x: "
          f"{'meets' if ratio >= TARGET_RATIO else 'MISSES'} the target >= {TARGET_RATIO:g}x")
    return {
        "benchmark": "dialog", "chats": args.chats, "naive_chats": args.naive_chats,
        "turns_per_chat": args.turns_per_chat,
        "turns": turns, "repeat": args.repeat,
        "turns_per_s": round(product, 1), "naive_turns_per_s": round(naive, 1),
        "ratio": round(ratio, 2),
        "p50_ms": round(figures.median("product", p50_ms), 2),
        "p99_ms": round(figures.median("product", p99_ms), 2),
        "naive_p50_ms": round(figures.median("naive", p50_ms), 2),
        "naive_p99_ms": round(figures.median("naive", p99_ms), 2),
        "statements_per_turn": round(figures.median("product",
                                                    lambda r: r.statements_per_turn), 2),
        "naive_statements_per_turn": round(figures.median("naive",
                                                          lambda r: r.statements_per_turn), 2),
        "turns_per_commit": round(figures.median("product", lambda r: r.turns_per_commit), 1),
        "match_only_per_s": round(match_rate, 1),
        "statement_us": round(in_sql / statements, 1), "round_trip_us": round(trip, 1),
        "target_turns_per_s": TARGET_RATE, "target_ratio": TARGET_RATIO,
        "meets_targets": product >= TARGET_RATE and ratio >= TARGET_RATIO,
        "stored_ok": stored, "same_replies": same,
    }


# Entry point -----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chats", type=int, default=500,
                        help="conversations talking at once (default %(default)s)")
    parser.add_argument("--turns-per-chat", type=int, default=7,
                        help="turns each chat sends, /start first (default %(default)s)")
    parser.add_argument("--naive-chats", type=int, default=None,
                        help=f"chats on the naive path, the first of the same script (default "
                             f"{NAIVE_CHATS} or --chats if fewer)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the product path once under cProfile")
    args = parser.parse_args(argv)
    if args.naive_chats is None:
        args.naive_chats = min(NAIVE_CHATS, args.chats)
    if (args.chats < 1 or not 1 <= args.naive_chats <= args.chats or args.turns_per_chat < 2
            or args.repeat < 1):
        parser.error("need 1 <= --naive-chats <= --chats, --turns-per-chat >= 2, --repeat >= 1")
    return args


async def main(args: argparse.Namespace) -> dict[str, object]:
    kb, catalog = KnowledgeBase.load(), Catalog.load()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-dialog-") as tmp:
        store = Store(Path(tmp))
        await store.prepare()
        dialog = make_settings(f"sqlite+aiosqlite:///{store.template}", store.folder).dialog
        words = [w.lower() for w in (*dialog.escalation_words, *dialog.complaint_words)]
        scripts = build_scripts(kb, words, args.chats, args.turns_per_chat)
        questions = [(s.inbound.text or "", s.locale) for steps in scripts for s in steps
                     if s.kind == "faq"]
        aside = Aside()
        for run in range(args.repeat):
            paths = (("product", product_turn, scripts),
                     ("naive", naive_turn, scripts[:args.naive_chats]))
            for name, turn, script in paths:
                result = await timed_run(store, kb, catalog, script, turn)
                figures.add(name, result)
                print(f"  {name}: run {run + 1}/{args.repeat}: {result.rate:,.0f} turns/s, "
                      f"{result.statements_per_turn:.1f} statements/turn", file=sys.stderr)
            rate, aside.match_outcomes = match_run(kb, questions)
            aside.match_rates.append(rate)
            aside.round_trips.append(await round_trip(store))
        answers = {a for article in kb.articles.values() for a in article.answer.values()}
        summary = report(figures, args, scripts, aside, answers)
        if args.profile:
            profiler = cProfile.Profile()
            result = await timed_run(store, kb, catalog, scripts, product_turn, profiler)
            print_profile(profiler, result.wall, result.turns)
    return summary


if __name__ == "__main__":
    summary = asyncio.run(main(parse_args()))
    print(json.dumps(summary))
