"""``serve`` killed with SIGKILL in the middle of sending notices, then started again.

The outbox promises at-least-once delivery with a narrow "at least": a process killed at any
instant loses no notice and, after the restart, sends nothing the Bot API had already confirmed
and the sender had written down; only a message in flight at the kill may go twice. Here a real
``run.py serve`` sends 300 notices to a local Bot API server at a fixed pace, is killed a third
of the way through, and a second ``serve`` on the same database finishes the job.

Several ``serve`` processes may also share one database and one bot. Then every notice still
goes once: on PostgreSQL each process dispatches the outbox (``SKIP LOCKED``), on SQLite only
the holder of the ``notice-dispatcher`` lease does, and only the holder of the
``telegram-sender`` lease sends (the pace is kept in its memory). When that process stops,
the other takes the sending over.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select

from bots.telegram.adapter import SEND_CONNECTIONS
from bots.telegram.local_api import LocalBotApi
from core.adapters.tables import channel_identities, deliveries, leases, outbox, users
from core.bootstrap import Core
from core.domain.clock import SystemClock
from core.notify import enqueue_many
from tests.support import DATA_KEY, SECRET_KEY, make_core

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:ABCcrash-test_token"
USERS, PER_USER = 150, 2
NOTICES = USERS * PER_USER
KILL_AFTER = NOTICES // 3  # messages the Bot API has received when the first server dies
FIRST_CHAT = 710_000_000
APPLICATION = re.compile(r"APP-\d{4}")

# The pace: fast enough to finish in seconds, slow enough to be caught mid-way. The delivery
# lease is twice the time a live process needs for what it claimed (the second one sends ~200
# messages in ~3 s: a burst of PER_SECOND, then PER_SECOND a second): a sender re-claims
# its own unsent messages when their lease lapses and would send them twice, which is not the
# crash this test is about. The restart waits for the dead process's lease anyway.
PER_SECOND = 50
DELIVERY_LEASE_SECONDS = 6  # a dead process's claim is due again after this
SENDER_LEASE_SECONDS = 2  # the minimum; the restarted process takes the sender over after this

# How many messages can be "in flight" at the kill: received by the Bot API but not yet
# written down as sent (``TelegramSender``). A message is in one of three places then:
#   - its sendMessage has no answer yet: at most SEND_CONNECTIONS (the sender's semaphore);
#   - answered, in ``confirmed``, waiting for the next write, which comes CONFIRM_INTERVAL
#     after the previous write committed;
#   - in the batch being written at the kill.
# The last two are the messages answered since the last committed write took its batch: that
# write's commit, the interval, and the write in progress, i.e. CONFIRM_INTERVAL plus two
# commits. We allow each commit COMMIT_ALLOWANCE (a few milliseconds on an idle machine; a
# loaded CI runner gets a wide margin). The token bucket is drained by then (the kill comes
# well after its initial burst), so at most PER_SECOND a second are sent in that time, plus the
# one token it may hold.
# Two servers at once: the sender is stopped while it sends (after STOP_AFTER messages, in the
# middle of a second's worth), and a second batch is queued as it stops, so the other server's
# dispatcher (on SQLite, perhaps after taking its lease over) has fresh notices to hand over.
STOP_AFTER = NOTICES // 3 + PER_SECOND // 4
MORE = 60
# The stopping sender gives its lease back, so the other one takes it at its next try (every
# third of the lease); the bound allows the whole lease, as if it had lapsed, plus a margin for
# the stopping process's shutdown and a loaded machine.
TAKEOVER_BOUND = SENDER_LEASE_SECONDS + 2
TAKES_SENDING = re.compile(r"this process now sends for the Telegram bot \((\S+)\)")

CONFIRM_INTERVAL = 0.05  # ``TelegramSender._confirm_forever``
COMMIT_ALLOWANCE = 0.25
IN_FLIGHT_BOUND = (SEND_CONNECTIONS
                   + math.ceil(PER_SECOND * (CONFIRM_INTERVAL + 2 * COMMIT_ALLOWANCE)) + 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# File access stays out of the coroutines (ruff's ASYNC rules): logs are small, read on failure.
def _open_log(path: Path) -> IO[str]:
    return path.open("a")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def add_chats(core: Core) -> list[tuple[int, str]]:
    """USERS users, each reachable in an English Telegram chat: (user id, chat) pairs."""
    # Users and chats are written directly: signing 150 users up through the bot (phone codes,
    # consents) would test registration, not delivery, and spend the time budget on it.
    async with core.uow() as uow:
        now = uow.clock.now()
        result = await uow.conn.execute(
            users.insert().returning(users.c.id, sort_by_parameter_order=True),
            [{"created_at": now, "locale": "en"} for _ in range(USERS)])
        user_ids = [int(row.id) for row in result.all()]
        chats = [(user_id, str(FIRST_CHAT + n)) for n, user_id in enumerate(user_ids)]
        await uow.conn.execute(channel_identities.insert(), [
            {"channel": "telegram", "external_id": chat, "user_id": user_id, "locale": "en",
             "first_seen_at": now, "last_seen_at": now} for user_id, chat in chats])
        for user_id in user_ids:  # application_result is not urgent: no quiet hours to wait out
            await core.notifications.set_quiet_hours(uow, user_id, "off")
        await uow.commit()
    return chats


async def queue_notices(core: Core, chats: list[tuple[int, str]], first: int,
                        count: int) -> dict[str, str]:
    """Notices ``first`` to ``first + count - 1``, PER_USER a user in turn; the answer maps each
    notice's application id (printed in its text) to its chat."""
    chat_of = {}
    notices = []
    for n in range(first, first + count):
        user_id, chat = chats[n // PER_USER % len(chats)]
        chat_of[f"APP-{n:04d}"] = chat
        notices.append({"user_id": user_id, "template": "application_result",
                        "params": {"application_id": f"APP-{n:04d}"},
                        "dedupe_key": f"crash:{n}"})
    async with core.uow() as uow:
        await enqueue_many(uow, notices)
        await uow.commit()
    return chat_of


def _sender_holders(log: Path) -> list[str]:
    """The ``telegram-sender`` leases a server took, in order, as its log tells."""
    return TAKES_SENDING.findall(log.read_text(errors="replace"))


def _bot_started(log: Path) -> bool:
    return "telegram bot @" in log.read_text(errors="replace")


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


def pid_of(holder: str) -> int:
    """A lease holder is ``host:pid:random`` (``core.leases.holder_id``)."""
    return int(holder.rsplit(":", 2)[1])


async def lease_holders(core: Core) -> dict[str, str]:
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(select(leases.c.name, leases.c.holder))).all()
    return {str(row.name): str(row.holder) for row in rows}


def holders_over_time(samples: list[tuple[float, dict[str, str]]],
                      name: str) -> list[tuple[float, str]]:
    """Each holder of lease ``name`` in the samples, with when it was first seen (a holder
    seen again after another one counts again; samples without the lease are skipped)."""
    seen: list[tuple[float, str]] = []
    for at, held in samples:
        holder = held.get(name)
        if holder is not None and (not seen or seen[-1][1] != holder):
            seen.append((at, holder))
    return seen


async def stop(server: asyncio.subprocess.Process) -> int:
    """SIGTERM (a graceful stop: leases and held messages are handed back); the exit code.
    Once only: a second SIGTERM cuts aiohttp's clean-up short (exit code 1)."""
    if server.returncode is None:
        server.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(server.wait(), 30)
    except TimeoutError:
        server.kill()
        await server.wait()
        raise


async def seed(core: Core) -> dict[str, str]:
    """USERS chats with PER_USER notices each (see ``queue_notices`` for the answer)."""
    return await queue_notices(core, await add_chats(core), 0, NOTICES)


def received(api: LocalBotApi) -> list[tuple[str, str]]:
    """Every message the Bot API accepted, in order, as (chat, application id or whole text)."""
    found = []
    for call in api.calls_to("sendMessage"):
        if call.status == 200:
            text = str(call.params.get("text", ""))
            match = APPLICATION.search(text)
            found.append((str(call.chat_id), match.group(0) if match else text))
    return found


async def written_as_sent(core: Core) -> set[tuple[str, str]]:
    """The messages whose confirmation is committed in the database."""
    d = deliveries.c
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(
            select(d.chat_id, d.text).where(d.status == "sent"))).all()
    return {(row.chat_id, APPLICATION.search(row.text).group(0)) for row in rows}


async def statuses(core: Core, column: ColumnElement[str]) -> Counter[str]:
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(
            select(column, func.count()).group_by(column))).all()
    return Counter({str(status): int(count) for status, count in rows})


def serve_env(database_url: str, data_dir: Path, api: LocalBotApi) -> dict[str, str]:
    """``serve`` on the test's database, sending to ``api`` at PER_SECOND."""
    return {**os.environ, "P2P_DATABASE_URL": database_url, "P2P_DATA_DIR": str(data_dir),
            "P2P_SECRET_KEY": SECRET_KEY, "P2P_DATA_KEY": DATA_KEY,
            "P2P_HTTP_PORT": str(free_port()), "P2P_LOCALE": "en", "P2P_DEMO_DATA": "false",
            "P2P_TELEGRAM_TOKEN": TOKEN, "P2P_TELEGRAM_API_URL": f"{api.url}/bot",
            "P2P_DELIVERY__PER_SECOND": str(PER_SECOND),
            "P2P_DELIVERY__PER_CHAT_INTERVAL_MS": "0",
            "P2P_DELIVERY__LEASE_SECONDS": str(DELIVERY_LEASE_SECONDS),
            "P2P_NOTIFY__LEASE_SECONDS": str(SENDER_LEASE_SECONDS),
            "P2P_NOTIFY__POLL_SECONDS": "0.2"}


async def serve(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = _open_log(log)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), "serve", cwd=log.parent, env=env,
            stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()  # the child has its own copy


async def until(ready: Callable[[], object], server: asyncio.subprocess.Process, log: Path,
                what: str, seconds: float, poll: float = 0.01) -> None:
    """Poll ``ready`` (sync or async) until true; fail at once if the server exits."""
    async with asyncio.timeout(seconds):
        while True:
            done = ready()
            if asyncio.iscoroutine(done):
                done = await done
            if done:
                return
            assert server.returncode is None, f"serve exited ({server.returncode}) before " \
                                              f"{what}:\n{_tail(log)}"
            await asyncio.sleep(poll)


async def test_a_server_killed_mid_batch_loses_no_notice_and_resends_only_what_was_in_flight(
        database_url, tmp_path):
    core = await make_core(database_url, SystemClock(ZoneInfo("Asia/Shanghai")), tmp_path)
    try:
        chat_of = await seed(core)
        expected = {(chat, application) for application, chat in chat_of.items()}
        async with LocalBotApi(tokens=[TOKEN]) as api:
            env = serve_env(database_url, tmp_path, api)

            first_log = tmp_path / "serve-1.log"
            first = await serve(env, first_log)
            try:
                await until(lambda: len(received(api)) >= KILL_AFTER, first, first_log,
                            f"{KILL_AFTER} messages were sent", 60)
            finally:
                os.kill(first.pid, signal.SIGKILL)  # no clean-up of any kind
                at_kill = len(received(api))
                await first.wait()
            await asyncio.sleep(0.5)  # requests already on the wire still reach the Bot API
            before = received(api)
            unconfirmed = set(before) - await written_as_sent(core)
            assert at_kill < NOTICES, "the first server finished before it could be killed"

            second_log = tmp_path / "serve-2.log"
            second = await serve(env, second_log)
            try:
                async def all_sent() -> bool:
                    return (await statuses(core, outbox.c.status)) == {"sent": NOTICES}

                await until(all_sent, second, second_log, "every notice was sent", 60, 0.2)
                count = -1
                while count != len(received(api)):  # and nothing more comes for a second
                    count = len(received(api))
                    await asyncio.sleep(1)
            finally:
                if second.returncode is None:
                    second.send_signal(signal.SIGTERM)
                returncode = await asyncio.wait_for(second.wait(), 30)
            assert returncode == 0, _tail(second_log)
            after = received(api)
            resent = [call.at for call in api.calls_to("sendMessage")
                      if call.status == 200][len(before):]
            notices = await statuses(core, outbox.c.status)
            messages = await statuses(core, deliveries.c.status)
    finally:
        await core.close()

    times = Counter(after)
    duplicated = {message for message, n in times.items() if n > 1}
    first_after_restart = set(after[len(before):]) - set(before)
    print(f"received at the kill {at_kill}, before the restart {len(before)}, unconfirmed "
          f"{len(unconfirmed)}, sent twice {len(duplicated)} (bound {IN_FLIGHT_BOUND}); the "
          f"restarted server sent {len(resent)} in {resent[-1] - resent[0] if resent else 0:.1f} s")
    assert notices == {"sent": NOTICES}, "notices left pending, queued, deferred or failed"
    assert messages == {"sent": NOTICES}, "each notice handed over once, and confirmed"
    assert set(times) == expected, "lost or unexpected messages"
    assert max(times.values()) <= 2, "a message went three times"
    assert len(set(before)) == len(before), "the first server sent a message twice"
    assert duplicated <= unconfirmed, "a message written down as sent was sent again"
    assert not duplicated & first_after_restart, "a message first sent after the restart went twice"
    assert len(duplicated) <= IN_FLIGHT_BOUND, (
        f"{len(duplicated)} messages went twice, more than the {IN_FLIGHT_BOUND} that can be "
        f"in flight ({at_kill} received at the kill, {len(unconfirmed)} unconfirmed)")
    assert first_after_restart, "the restarted server sent nothing"


async def test_two_servers_send_each_notice_once_and_the_other_takes_over_when_the_sender_stops(
        database_url, tmp_path):
    core = await make_core(database_url, SystemClock(ZoneInfo("Asia/Shanghai")), tmp_path)
    sqlite = core.settings.is_sqlite
    samples: list[tuple[float, dict[str, str]]] = []

    async def sample_leases() -> None:
        while True:
            held = await lease_holders(core)
            samples.append((time.monotonic(), held))
            await asyncio.sleep(0.05)

    try:
        chats = await add_chats(core)
        async with LocalBotApi(tokens=[TOKEN]) as api:
            logs = [tmp_path / "serve-a.log", tmp_path / "serve-b.log"]
            launched = time.monotonic()
            servers = [await serve(serve_env(database_url, tmp_path, api), log) for log in logs]
            sampler = asyncio.create_task(sample_leases(), name="lease-sampler")
            try:
                for server, log in zip(servers, logs, strict=True):
                    await until(lambda log=log: _bot_started(log), server, log,
                                "the bot started", 30, 0.1)
                started = time.monotonic()
                chat_of = await queue_notices(core, chats, 0, NOTICES)

                def running(server: asyncio.subprocess.Process, log: Path) -> bool:
                    assert server.returncode is None, f"serve exited ({server.returncode}):\n" \
                                                      f"{_tail(log)}"
                    return True

                await until(lambda: all(map(running, servers, logs))
                            and len(received(api)) >= STOP_AFTER, servers[0], logs[0],
                            f"{STOP_AFTER} messages were sent", 30)
                sending = pid_of((await lease_holders(core))["telegram-sender"])
                assert sending in {s.pid for s in servers}, "the sender is neither server"
                index = [s.pid for s in servers].index(sending)
                sender, sender_log = servers[index], logs[index]
                other, other_log = servers[1 - index], logs[1 - index]
                other_sent_before = _sender_holders(other_log)
                stopped_at = time.monotonic()
                stopping = asyncio.create_task(stop(sender))  # one SIGTERM: a second aborts
                chat_of |= await queue_notices(core, chats, NOTICES, MORE)
                sender_exit = await stopping
                sender_exited_at = time.monotonic()
                total = NOTICES + MORE

                async def all_sent() -> bool:
                    return (await statuses(core, outbox.c.status)) == {"sent": total}

                await until(all_sent, other, other_log, "every notice was sent", 30, 0.2)
                count = -1
                while count != len(received(api)):  # and nothing more comes for a second
                    count = len(received(api))
                    await asyncio.sleep(1)
                finished = time.monotonic()
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
                exits = [await stop(server) for server in servers]
            times = Counter(received(api))
            sends = [call.at for call in api.calls_to("sendMessage") if call.status == 200]
            went: dict[tuple[str, str], list[float]] = {}  # when each message went
            for message, at in zip(received(api), sends, strict=True):
                went.setdefault(message, []).append(at)
            notices = await statuses(core, outbox.c.status)
            messages = await statuses(core, deliveries.c.status)
            async with core.uow(read_only=True) as uow:
                carried = (await uow.conn.execute(
                    select(func.count(deliveries.c.outbox_id.distinct())))).scalar_one()
    finally:
        await core.close()

    senders = holders_over_time(samples, "telegram-sender")
    dispatchers = holders_over_time(samples, "notice-dispatcher")
    taken_over_at = next((at for at, holder in senders if pid_of(holder) == other.pid), None)
    after_takeover = [at for at in sends if taken_over_at is not None and at > taken_over_at]
    print(f"both servers up in {started - launched:.1f} s; {len(sends)} messages in "
          f"{finished - started:.1f} s; the sender was stopped after "
          f"{sum(at < stopped_at for at in sends)} and exited in "
          f"{sender_exited_at - stopped_at:.1f} s; the other took the lease over "
          f"{taken_over_at - stopped_at if taken_over_at else float('nan'):.1f} s after the "
          f"stop and sent again {after_takeover[0] - stopped_at if after_takeover else 0:.1f} s "
          f"after it; dispatchers {[pid_of(h) for _, h in dispatchers]}")
    expected = {(chat, application) for application, chat in chat_of.items()}
    assert exits == [0, 0] and sender_exit == 0, "a server did not stop cleanly"
    assert notices == {"sent": total}, "notices left pending, queued, deferred or failed"
    assert messages == {"sent": total} and carried == total, "not one message per notice"
    assert set(times) == expected, "lost or unexpected messages"
    twice = sorted(message for message, n in times.items() if n > 1)
    assert not twice, (
        f"{len(twice)} messages went more than once, at (s after the stop): "
        f"{[(m, [round(at - stopped_at, 2) for at in went[m]]) for m in twice[:10]]}")

    # Exactly one process sent at any time: the sender's lease went from the stopped server to
    # the other one once, and each took it once (its log says so) and no other time.
    assert [pid_of(holder) for _, holder in senders] == [sender.pid, other.pid], senders
    assert other_sent_before == [], "the other server took the sender's lease while it ran"
    assert _sender_holders(sender_log) == [senders[0][1]], _tail(sender_log)
    assert _sender_holders(other_log) == [senders[1][1]], _tail(other_log)
    assert taken_over_at is not None and taken_over_at > stopped_at
    assert taken_over_at - stopped_at <= TAKEOVER_BOUND, "the other server took over late"
    assert after_takeover, "the other server sent nothing"
    assert after_takeover[0] - stopped_at <= TAKEOVER_BOUND, "sending resumed late"

    # The outbox's dispatcher: on SQLite one lease holder (the other server once the holder
    # stopped, if it was the one stopped); on PostgreSQL no lease, every process dispatches.
    if sqlite:
        pids = [pid_of(holder) for _, holder in dispatchers]
        assert pids in ([other.pid], [sender.pid, other.pid]), dispatchers
        assert len(dispatchers) == 1 or dispatchers[1][0] > stopped_at, dispatchers
    else:
        assert dispatchers == [], "a dispatcher lease on PostgreSQL"
    for log in logs:
        assert not _errors(log), "\n".join(_errors(log))
